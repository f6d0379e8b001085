"""Honest counts and small summaries: superseded rows per file, the registers each school has sent,
and when each file's staged rows were last proved against their contract.

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
        batch.add_column(sa.Column('contract_checked_at', sa.DateTime(timezone=True), nullable=True,
                                   comment="when the staged_contract check last proved this file's staged rows"))
    op.create_table(
        'school_registers',
        sa.Column('laestab', sa.String(length=7), nullable=False),
        sa.Column('session_date', sa.Date(), nullable=False),
        sa.Column('session', sa.String(length=2), nullable=False, comment='AM | PM'),
        sa.Column('last_recorded_at', sa.DateTime(timezone=True), nullable=False,
                  comment='the latest recorded_at of any mark staged for this school and session'),
        sa.PrimaryKeyConstraint('laestab', 'session_date', 'session'),
        comment='Which registers each school has sent: freshness reads this, never a scan of every mark',
    )
    op.execute("INSERT INTO school_registers (laestab, session_date, session, last_recorded_at) "
               "SELECT laestab, session_date, session, max(recorded_at) FROM staged_marks "
               "GROUP BY laestab, session_date, session")


def downgrade() -> None:
    op.drop_table('school_registers')
    with op.batch_alter_table('landing_manifest') as batch:
        batch.drop_column('contract_checked_at')
        batch.drop_column('rows_superseded')
