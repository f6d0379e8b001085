"""Count superseded rows per landed file: rows read = staged + superseded + quarantined.

Revision ID: 0002
Revises: 0001
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

revision: str = '0002'
down_revision: Union[str, Sequence[str], None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('landing_manifest') as batch:
        batch.add_column(sa.Column('rows_superseded', sa.Integer(), nullable=True,
                                   comment='earlier marks of a session replaced by a later edit in the same file'))


def downgrade() -> None:
    with op.batch_alter_table('landing_manifest') as batch:
        batch.drop_column('rows_superseded')
