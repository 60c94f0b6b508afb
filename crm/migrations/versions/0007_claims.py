"""claims: outbox rows claimed before they are sent; one open handoff per client

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

OPEN = "status IN ('queued', 'active')"


def upgrade() -> None:
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True))
    # A client may hold several open handoffs from before (two processes racing): keep the
    # oldest open, close the others, then forbid it.
    op.execute(f"""
        UPDATE handoffs SET status = 'closed', closed_at = opened_at
        WHERE {OPEN} AND id NOT IN (SELECT min(id) FROM handoffs WHERE {OPEN} GROUP BY client_id)
    """)
    with op.batch_alter_table('handoffs', schema=None) as batch_op:
        batch_op.create_index('uq_handoffs_open_client', ['client_id'], unique=True,
                              sqlite_where=sa.text(OPEN), postgresql_where=sa.text(OPEN))


def downgrade() -> None:
    with op.batch_alter_table('handoffs', schema=None) as batch_op:
        batch_op.drop_index('uq_handoffs_open_client')
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_column('claimed_at')
