"""What the reports need and the tables alone could not tell afterwards: handoffs.first_reply_at
(the manager's first message to the client) and lead_events (each status a lead took, and when)

Revision ID: 0014
Revises: 0013
"""
from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('handoffs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('first_reply_at', sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        'lead_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('lead_id', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_lead_events_lead_id_leads'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_lead_events')),
    )
    with op.batch_alter_table('lead_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lead_events_lead_id'), ['lead_id'], unique=False)
        batch_op.create_index('ix_lead_events_status_at', ['status', 'at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('lead_events', schema=None) as batch_op:
        batch_op.drop_index('ix_lead_events_status_at')
        batch_op.drop_index(batch_op.f('ix_lead_events_lead_id'))
    op.drop_table('lead_events')
    with op.batch_alter_table('handoffs', schema=None) as batch_op:
        batch_op.drop_column('first_reply_at')
