"""desk routing: VIP, account managers, staff forum topics, call-backs

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('staff_topics',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('chat_id', sa.BigInteger(), nullable=False),
    sa.Column('thread_id', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_staff_topics_client_id_clients'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_topics'))
    )
    with op.batch_alter_table('staff_topics', schema=None) as batch_op:
        batch_op.create_index('ix_staff_topics_chat_client', ['chat_id', 'client_id'], unique=True)
        batch_op.create_index('ix_staff_topics_chat_thread', ['chat_id', 'thread_id'], unique=False)

    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('vip', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('account_manager_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_clients_account_manager_id_staff'), 'staff', ['account_manager_id'], ['id'], ondelete='SET NULL')

    with op.batch_alter_table('handoffs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('notified_all', sa.Boolean(), server_default=sa.true(), nullable=False))
        batch_op.add_column(sa.Column('awaiting_reply_since', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('manager_reminded', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('callback_phone', sa.String(length=64), nullable=True))

    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('topic_client_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_notifications_topic_client_id_clients'), 'clients', ['topic_client_id'], ['id'], ondelete='CASCADE')



def downgrade() -> None:
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_notifications_topic_client_id_clients'), type_='foreignkey')
        batch_op.drop_column('topic_client_id')

    with op.batch_alter_table('handoffs', schema=None) as batch_op:
        batch_op.drop_column('callback_phone')
        batch_op.drop_column('manager_reminded')
        batch_op.drop_column('awaiting_reply_since')
        batch_op.drop_column('notified_all')

    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_clients_account_manager_id_staff'), type_='foreignkey')
        batch_op.drop_column('account_manager_id')
        batch_op.drop_column('vip')

    with op.batch_alter_table('staff_topics', schema=None) as batch_op:
        batch_op.drop_index('ix_staff_topics_chat_thread')
        batch_op.drop_index('ix_staff_topics_chat_client')

    op.drop_table('staff_topics')
