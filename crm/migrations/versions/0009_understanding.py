"""products.category_en: the English label of a product's category, shown to English-speaking
clients (the category itself stays the key: buttons, promotions and segments use it);
button_payloads.batch and clients.choices_batch: the buttons on the client's screen, so that a
typed answer naming one of them counts as pressing it

Revision ID: 0009
Revises: 0008
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.add_column(sa.Column('category_en', sa.String(length=128), nullable=True))
    with op.batch_alter_table('button_payloads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('batch', sa.String(length=24), nullable=True))
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('choices_batch', sa.String(length=24), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.drop_column('choices_batch')
    with op.batch_alter_table('button_payloads', schema=None) as batch_op:
        batch_op.drop_column('batch')
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.drop_column('category_en')
