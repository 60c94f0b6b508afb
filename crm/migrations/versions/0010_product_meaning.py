"""products.embedding and products.embedding_key: each product's sentence vector for search by
meaning (crm/meaning.py), computed at import, and the fingerprint of the text and encoder it came
from. Products imported before this revision get theirs at the next import; until then search
encodes them in memory when it builds its index.

Revision ID: 0010
Revises: 0009
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.add_column(sa.Column('embedding', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('embedding_key', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.drop_column('embedding_key')
        batch_op.drop_column('embedding')
