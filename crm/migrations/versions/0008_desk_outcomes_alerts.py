"""handoff outcome: who or what closed a conversation (manager, admin, client, expired), and
since when a conversation waits in the queue (it returns there when its manager leaves the desk);
announcements: staff alerts sent once whatever the number of bot processes; inbound_updates and
conversation_messages.update_id/claimed_at: no update lost or answered twice across a crash;
notifications.parts_sent: a long text retried goes on from the part that failed

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
    op.create_table(
        'inbound_updates',
        sa.Column('update_id', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('chat_id', sa.BigInteger(), nullable=True),
        sa.Column('payload', sa.JSON(), nullable=False),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('update_id'),
    )
    with op.batch_alter_table('inbound_updates', schema=None) as batch_op:
        batch_op.create_index('ix_inbound_updates_chat_id', ['chat_id'], unique=False)
        batch_op.create_index('ix_inbound_updates_done_at', ['done_at'], unique=False)
    with op.batch_alter_table('conversation_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('update_id', sa.BigInteger(), nullable=True))
        batch_op.create_index('ix_conversation_messages_update_id', ['update_id'], unique=False)
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('parts_sent', sa.Integer(), server_default=sa.text('0'), nullable=False))
    with op.batch_alter_table('relayed_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('update_id', sa.BigInteger(), nullable=True))
        batch_op.create_index('ix_relayed_messages_update_id', ['update_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_column('parts_sent')
    with op.batch_alter_table('relayed_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_relayed_messages_update_id')
        batch_op.drop_column('update_id')
    with op.batch_alter_table('conversation_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_conversation_messages_update_id')
        batch_op.drop_column('update_id')
        batch_op.drop_column('claimed_at')
    op.drop_table('inbound_updates')
    op.drop_table('announcements')
    with op.batch_alter_table('handoffs', schema=None) as batch_op:
        batch_op.drop_column('queued_at')
        batch_op.drop_column('closed_by')
