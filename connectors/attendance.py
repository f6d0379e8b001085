"""Attendance read from the store in the shape the signals need, without holding a year of marks.

Measures need only per-enrolment sums of sessions by category: `attendance_weeks` keeps them per
week, refreshed for the school weeks each staged file touches (`stage_marks`, `refresh_weeks`), and
the database adds up a period's weeks, so neither memory nor time grows with a year of marks. Runs of
consecutive days need the marks themselves, but only recent ones (`marks_between`).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import pandas as pd
from sqlalchemy import Date, and_, bindparam, case, delete, false, func, insert, or_, select, tuple_, union_all

from connectors.store import Store
from schemas.tables import attendance_weeks, staged_marks

SUSPENSION_MARK, PART_TIME_MARK = "E", "C2"     # as transforms.measures counts them


def _count(condition) -> object:
    return func.sum(case((condition, 1), else_=0))


def _sums(m) -> list:
    """The summed columns of `transforms.measures.session_sums`, over marks `m`."""
    return [_count(m.category != "not_possible").label("possible_sessions"),
            _count(m.category == "present").label("present_sessions"),
            _count(m.category == "aea").label("aea_sessions"),
            _count(m.category == "authorised").label("authorised_sessions"),
            _count(m.category == "unauthorised").label("unauthorised_sessions"),
            _count(m.mark == SUSPENSION_MARK).label("suspension_sessions"),
            _count(m.mark == PART_TIME_MARK).label("part_time_sessions")]


SUM_COLUMNS = ["possible_sessions", "present_sessions", "aea_sessions", "authorised_sessions",
               "unauthorised_sessions", "suspension_sessions", "part_time_sessions"]


def week_start(day: dt.date) -> dt.date:
    """The Monday of the day's week."""
    return day - dt.timedelta(days=day.weekday())


def stage_marks(store: Store, marks: pd.DataFrame, *, newer_column: str = "recorded_at") -> int:
    """Upsert staged marks and bring the weekly sums of every school week they touch up to date,
    in one transaction. Returns the marks inserted or changed."""
    if marks.empty:
        return 0
    with store.begin():
        written = store.upsert(staged_marks, marks, newer_column=newer_column)
        refresh_weeks(store, school_weeks(marks))
    return written


def school_weeks(marks: pd.DataFrame) -> set[tuple[str, dt.date]]:
    """The (laestab, week_start) pairs of a frame of marks."""
    days = marks[["laestab", "session_date"]].drop_duplicates()
    return {(str(laestab), week_start(day)) for laestab, day in days.itertuples(index=False)}


def refresh_weeks(store: Store, weeks: Iterable[tuple[str, dt.date]]) -> None:
    """Recompute `attendance_weeks` for the given school weeks from the staged marks (in the
    caller's transaction when there is one): what a new file, a corrected mark or a re-staged
    file changed, and nothing else."""
    weeks = sorted(set(weeks))
    if not weeks:
        return
    m, w = staged_marks.c, attendance_weeks.c
    first, last = bindparam("first", type_=Date), bindparam("last", type_=Date)
    summed = (select(m.laestab, m.pupil_ref, first.label("week_start"), *_sums(m))
              .where(m.laestab == bindparam("school"), m.session_date.between(first, last))
              .group_by(m.laestab, m.pupil_ref))
    params = [{"school": laestab, "first": monday, "last": monday + dt.timedelta(days=6)} for laestab, monday in weeks]
    with store.begin() as conn:
        conn.execute(delete(attendance_weeks).where(w.laestab == bindparam("school"),
                                                    w.week_start == bindparam("first")), params)
        conn.execute(insert(attendance_weeks).from_select(["laestab", "pupil_ref", "week_start", *SUM_COLUMNS],
                                                          summed), params)


def session_sums(store: Store, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Per enrolment with marks dated within [start, end]: sessions by category, suspensions, part-time
    sessions — the columns of `transforms.measures.session_sums`, computed by the database from the
    weekly sums of the whole weeks in the period and the marks of the days either side of them."""
    m, w = staged_marks.c, attendance_weeks.c
    whole_from = start + dt.timedelta(days=(7 - start.weekday()) % 7)        # first Monday on or after start
    whole_to = week_start(end + dt.timedelta(days=1))                          # Monday after the last whole week
    parts = []
    if whole_from < whole_to:
        parts.append(select(w.laestab, w.pupil_ref, *[w[c].label(c) for c in SUM_COLUMNS])
                     .where(w.week_start >= whole_from, w.week_start < whole_to))
        edges = or_(m.session_date.between(start, whole_from - dt.timedelta(days=1)),
                    m.session_date.between(whole_to, end))
    else:
        edges = m.session_date.between(start, end)
    parts.append(select(m.laestab, m.pupil_ref, *_sums(m)).where(edges).group_by(m.laestab, m.pupil_ref))
    both = union_all(*parts).subquery() if len(parts) > 1 else parts[0].subquery()
    stmt = (select(both.c.laestab, both.c.pupil_ref, *[func.sum(both.c[c]).label(c) for c in SUM_COLUMNS])
            .group_by(both.c.laestab, both.c.pupil_ref).order_by(both.c.laestab, both.c.pupil_ref))
    with store.engine.connect() as conn:
        result = conn.execute(stmt)
        frame = pd.DataFrame(result.all(), columns=list(result.keys()))
    for column in frame.columns[2:]:
        frame[column] = frame[column].astype(int)
    return frame


def marks_between(store: Store, start: dt.date | None, end: dt.date,
                  enrolments: Iterable[tuple[str, str]] | None = None, *,
                  run_candidates: bool = False) -> pd.DataFrame:
    """Staged marks dated within [start, end] (no start: from the first), optionally only for the
    given (laestab, pupil_ref) enrolments, or (`run_candidates`) only for enrolments that may be in
    a run of unauthorised days: with an unauthorised session in the weeks of those dates, or no
    possible session in them (from `attendance_weeks`)."""
    m, w = staged_marks.c, attendance_weeks.c
    columns = ["laestab", "pupil_ref", "session_date", "session", "mark", "category"]
    dates = m.session_date <= end if start is None else m.session_date.between(start, end)
    if run_candidates:
        weeks = w.week_start.between(week_start(start), end) if start is not None else w.week_start <= end
        holders = (select(w.laestab, w.pupil_ref).where(weeks).group_by(w.laestab, w.pupil_ref)
                   .having(or_(func.sum(w.unauthorised_sessions) > 0, func.sum(w.possible_sessions) == 0)))
        return store.read(staged_marks, where=and_(dates, tuple_(m.laestab, m.pupil_ref).in_(holders)),
                          columns=columns)
    if enrolments is None:
        return store.read(staged_marks, where=dates, columns=columns)
    wanted = sorted(set(enrolments))
    if not wanted:
        return store.read(staged_marks, where=false(), columns=columns)
    frames = [store.read(staged_marks, columns=columns, where=and_(dates, or_(
        *[and_(m.laestab == laestab, m.pupil_ref == ref) for laestab, ref in wanted[i:i + 200]])))
        for i in range(0, len(wanted), 200)]      # 400 bound values a batch: under SQLite's limit
    return pd.concat(frames, ignore_index=True)
