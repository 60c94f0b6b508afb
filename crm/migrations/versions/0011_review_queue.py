"""review_items: what the assistant did not understand well (a fallback, a low confidence, a
message the client rephrased or followed by asking for a person), masked and counted once per
normalised text, for managers to label (crm/review.py)

Revision ID: 0011
Revises: 0010
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'review_items',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('language', sa.String(length=8), nullable=False),
        sa.Column('reason', sa.String(length=16), nullable=False),
        sa.Column('predictions', sa.JSON(), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.Column('last_message_id', sa.String(length=64), nullable=True),
        sa.Column('first_seen', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_seen', sa.DateTime(timezone=True), nullable=False),
        sa.Column('status', sa.String(length=16), server_default='pending', nullable=False),
        sa.Column('label', sa.String(length=64), nullable=True),
        sa.Column('labelled_by', sa.Integer(), nullable=True),
        sa.Column('labelled_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('claimed_by', sa.Integer(), nullable=True),
        sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'labelled', 'off_topic', 'skipped')",
                           name=op.f('ck_review_items_status')),
        sa.ForeignKeyConstraint(['claimed_by'], ['staff.id'], name=op.f('fk_review_items_claimed_by_staff'),
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['labelled_by'], ['staff.id'], name=op.f('fk_review_items_labelled_by_staff'),
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_review_items')),
        sa.UniqueConstraint('key', name=op.f('uq_review_items_key')),
    )
    with op.batch_alter_table('review_items', schema=None) as batch_op:
        batch_op.create_index('ix_review_items_status_count', ['status', 'count'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('review_items', schema=None) as batch_op:
        batch_op.drop_index('ix_review_items_status_count')
    op.drop_table('review_items')
