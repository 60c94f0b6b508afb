"""conversation_messages.understood (the language model's verdict on each client text, for the
understanding rate) with an index on created_at for counts over a period; retrainings (each
retraining with the managers' labels and its figures, bot/retrain.py)

Revision ID: 0012
Revises: 0011
"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('conversation_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('understood', sa.Boolean(), nullable=True))
        batch_op.create_index('ix_conversation_messages_created', ['created_at'], unique=False)
    op.create_table(
        'retrainings',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('swapped', sa.Boolean(), nullable=False),
        sa.Column('reason', sa.String(length=32), nullable=False),
        sa.Column('model', sa.String(length=200), nullable=False),
        sa.Column('labels', sa.Integer(), nullable=False),
        sa.Column('trained_on', sa.Integer(), nullable=False),
        sa.Column('kept_aside', sa.Integer(), nullable=False),
        sa.Column('before_held_out', sa.Float(), nullable=True),
        sa.Column('before_aside', sa.Float(), nullable=True),
        sa.Column('after_held_out', sa.Float(), nullable=True),
        sa.Column('after_aside', sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_retrainings')),
    )
    with op.batch_alter_table('retrainings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_retrainings_at'), ['at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('retrainings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_retrainings_at'))
    op.drop_table('retrainings')
    with op.batch_alter_table('conversation_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_conversation_messages_created')
        batch_op.drop_column('understood')
