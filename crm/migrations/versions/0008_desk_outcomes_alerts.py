"""handoff outcome: who or what closed a conversation (manager, admin, client, expired), and
since when a conversation waits in the queue (it returns there when its manager leaves the desk);
announcements: staff alerts sent once whatever the number of bot processes

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('handoffs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('closed_by', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('queued_at', sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE handoffs SET closed_by = 'manager' WHERE status = 'closed'")
    op.execute("UPDATE handoffs SET queued_at = opened_at")
    op.create_table(
        'announcements',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('key', sa.String(length=128), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('key'),
    )


def downgrade() -> None:
    op.drop_table('announcements')
    with op.batch_alter_table('handoffs', schema=None) as batch_op:
        batch_op.drop_column('queued_at')
        batch_op.drop_column('closed_by')
