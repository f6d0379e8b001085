"""Re-staging keeps history: superseded quarantine rows and data-quality issues, restaged files.

`tether restage` re-reads a landed file under the current layout. What the earlier reading found
and the new one no longer does is kept, stamped `superseded_at`, rather than deleted; only rows
with `superseded_at` null count. The manifest records when a file was last re-read.

Revision ID: 0003
Revises: 0002
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

revision: str = '0003'
down_revision: Union[str, Sequence[str], None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('quarantine') as batch:
        batch.add_column(sa.Column('superseded_at', sa.DateTime(timezone=True), nullable=True,
                                   comment='when a re-staging of the file no longer found this; null while in force'))
    with op.batch_alter_table('data_quality_issues') as batch:
        batch.add_column(sa.Column('superseded_at', sa.DateTime(timezone=True), nullable=True,
                                   comment='when a re-staging of the file no longer found this; null while in force'))
    with op.batch_alter_table('landing_manifest') as batch:
        batch.add_column(sa.Column('restaged_at', sa.DateTime(timezone=True), nullable=True,
                                   comment='when the file was last re-read by tether restage'))


def downgrade() -> None:
    with op.batch_alter_table('landing_manifest') as batch:
        batch.drop_column('restaged_at')
    with op.batch_alter_table('data_quality_issues') as batch:
        batch.drop_column('superseded_at')
    with op.batch_alter_table('quarantine') as batch:
        batch.drop_column('superseded_at')
