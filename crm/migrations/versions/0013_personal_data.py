"""Personal data (RGPD): clients.erased_at (an erased client's pseudonymous row, kept with its
orders), notifications.client_id (the client a message is to or about, for export and erasure),
erasures (the log of erasures, without the erased data) and purges (the retention job's runs)

Revision ID: 0013
Revises: 0012
"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('erased_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('client_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_notifications_client_id'), ['client_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_notifications_client_id_clients'), 'clients', ['client_id'],
                                    ['id'], ondelete='CASCADE')
    op.create_table(
        'erasures',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('by', sa.String(length=64), nullable=False),
        sa.Column('client_ref', sa.Integer(), nullable=False),
        sa.Column('categories', sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_erasures')),
    )
    with op.batch_alter_table('erasures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_erasures_client_ref'), ['client_ref'], unique=False)
    op.create_table(
        'purges',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('counts', sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_purges')),
    )
    with op.batch_alter_table('purges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_purges_at'), ['at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('purges', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_purges_at'))
    op.drop_table('purges')
    with op.batch_alter_table('erasures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_erasures_client_ref'))
    op.drop_table('erasures')
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_notifications_client_id_clients'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_notifications_client_id'))
        batch_op.drop_column('client_id')
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.drop_column('erased_at')
