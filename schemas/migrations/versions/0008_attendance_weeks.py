"""Per-enrolment weekly sums of sessions by category, and an index to refresh them by school week.

`attendance_weeks` is derived from `staged_marks` and kept up to date as marks are staged, so
the attendance measures add up a few dozen weeks per pupil instead of re-reading a year of marks.
Existing marks are summed into it here.

Revision ID: 0008
Revises: 0007
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

revision: str = '0008'
down_revision: Union[str, Sequence[str], None] = '0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_SUMS = """
    SUM(CASE WHEN category <> 'not_possible' THEN 1 ELSE 0 END),
    SUM(CASE WHEN category = 'present' THEN 1 ELSE 0 END),
    SUM(CASE WHEN category = 'aea' THEN 1 ELSE 0 END),
    SUM(CASE WHEN category = 'authorised' THEN 1 ELSE 0 END),
    SUM(CASE WHEN category = 'unauthorised' THEN 1 ELSE 0 END),
    SUM(CASE WHEN mark = 'E' THEN 1 ELSE 0 END),
    SUM(CASE WHEN mark = 'C2' THEN 1 ELSE 0 END)"""
_WEEK = {"sqlite": "date(session_date, '-' || ((CAST(strftime('%w', session_date) AS INTEGER) + 6) % 7) || ' days')",
         "postgresql": "CAST(date_trunc('week', session_date) AS DATE)"}


def upgrade() -> None:
    op.create_table('attendance_weeks',
    sa.Column('laestab', sa.String(length=7), nullable=False),
    sa.Column('pupil_ref', sa.String(length=64), nullable=False),
    sa.Column('week_start', sa.Date(), nullable=False, comment='the Monday of the week'),
    sa.Column('possible_sessions', sa.Integer(), nullable=False),
    sa.Column('present_sessions', sa.Integer(), nullable=False),
    sa.Column('aea_sessions', sa.Integer(), nullable=False),
    sa.Column('authorised_sessions', sa.Integer(), nullable=False),
    sa.Column('unauthorised_sessions', sa.Integer(), nullable=False),
    sa.Column('suspension_sessions', sa.Integer(), nullable=False),
    sa.Column('part_time_sessions', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('laestab', 'pupil_ref', 'week_start'),
    comment="Each enrolment's sessions by category per week, kept up to date as marks are staged: "
            "measures add up weeks instead of a year of marks"
    )
    op.create_index('ix_marks_school_date', 'staged_marks', ['laestab', 'session_date'], unique=False)
    week = _WEEK[op.get_bind().dialect.name]
    op.execute(
        "INSERT INTO attendance_weeks (laestab, pupil_ref, week_start, possible_sessions, present_sessions, "
        "aea_sessions, authorised_sessions, unauthorised_sessions, suspension_sessions, part_time_sessions) "
        "SELECT laestab, pupil_ref, " + week + ", " + _SUMS + " FROM staged_marks GROUP BY laestab, pupil_ref, "
        + week)


def downgrade() -> None:
    op.drop_index('ix_marks_school_date', table_name='staged_marks')
    op.drop_table('attendance_weeks')
