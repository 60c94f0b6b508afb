"""Bot replicas: each update in the inbox names the bot process that received it, so that the
updates of a process that died are taken over by a live one, and only those (crm/inbox.py)

Revision ID: 0016
Revises: 0015
"""
import sqlalchemy as sa
from alembic import op


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('inbound_updates') as batch:
        batch.add_column(sa.Column('owner', sa.String(length=80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('inbound_updates') as batch:
        batch.drop_column('owner')
