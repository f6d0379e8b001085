"""The SFTP poll state moves into the store (it was `$TETHER_DATA_DIR/state/<source>.sftp.json`).

`sftp_poll_state` holds, per SFTP source, the files being watched until they are unchanged for
`stable_seconds` and the files landed and left in place, so that a run on any machine or pod
polls on from where the last one left off. Files are known by a keyed HMAC of their name, never
by the name. An existing JSON file is taken into the store by the source's next landing, then
removed (orchestration/remote_sources.py).

Revision ID: 0007
Revises: 0006
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

revision: str = '0007'
down_revision: Union[str, Sequence[str], None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('sftp_poll_state',
    sa.Column('source_id', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False,
              comment='observed (waiting to be unchanged for stable_seconds) | landed (landed and left in place)'),
    sa.Column('name_key', sa.String(length=64), nullable=False,
              comment='keyed HMAC of the remote file name (connectors.sftp_state.name_key), never the name'),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('mtime', sa.BigInteger(), nullable=False, comment="the server's modification time, epoch seconds"),
    sa.Column('observed_since', sa.DateTime(timezone=True), nullable=True,
              comment='observed: first seen with this size and mtime'),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('source_id', 'kind', 'name_key')
    )


def downgrade() -> None:
    op.drop_table('sftp_poll_state')
