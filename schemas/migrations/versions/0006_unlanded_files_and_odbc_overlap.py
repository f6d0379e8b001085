"""Files seen in a source's folder but not landed; ODBC rows already pulled in the overlap window.

`unlanded_files` lets `tether status` name every file Tether did not take (refused, matching no
pattern, in flight). `odbc_overlap_rows` holds keyed fingerprints of the rows pulled within the
watermark overlap window, so that re-reading the window lands only rows not seen before.

Revision ID: 0006
Revises: 0005
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

revision: str = '0006'
down_revision: Union[str, Sequence[str], None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('unlanded_files',
    sa.Column('source_id', sa.String(length=100), nullable=False),
    sa.Column('file_name', sa.String(length=400), nullable=False, comment='escaped (repr), never used as a path'),
    sa.Column('state', sa.String(length=20), nullable=False,
              comment='refused | unmatched | in_flight | stale_in_flight'),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=True),
    sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('source_id', 'file_name')
    )
    op.create_table('odbc_overlap_rows',
    sa.Column('source_id', sa.String(length=100), nullable=False),
    sa.Column('relation', sa.String(length=100), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False, comment='keyed HMAC of the row as extracted'),
    sa.Column('watermark', sa.String(length=100), nullable=False),
    sa.PrimaryKeyConstraint('source_id', 'relation', 'fingerprint')
    )


def downgrade() -> None:
    op.drop_table('odbc_overlap_rows')
    op.drop_table('unlanded_files')
