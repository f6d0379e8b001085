"""The store remembers the fingerprints of the keys it was built with (store_keys).

Revision ID: 0005
Revises: 0003
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

revision: str = '0005'
down_revision: Union[str, Sequence[str], None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('store_keys',
    sa.Column('purpose', sa.String(length=20), nullable=False, comment='token | identity'),
    sa.Column('key_id', sa.String(length=40), nullable=False, comment='sharing.keys.key_id: a fingerprint, never the key'),
    sa.Column('state', sa.String(length=20), nullable=False, comment='current | retired (a rotation retires the old key)'),
    sa.Column('first_used_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('purpose', 'key_id')
    )
    op.create_index('uq_store_keys_current', 'store_keys', ['purpose'], unique=True,
                    sqlite_where=sa.text("state = 'current'"), postgresql_where=sa.text("state = 'current'"))


def downgrade() -> None:
    op.drop_index('uq_store_keys_current', table_name='store_keys')
    op.drop_table('store_keys')
