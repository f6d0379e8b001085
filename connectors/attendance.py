"""Attendance read from the store in the shape the signals need, without holding a year of marks.

Measures need only per-enrolment sums of sessions by category: the database computes them
(`GROUP BY` school and pupil), so memory grows with the roll, not with the number of marks. Runs of
consecutive days need the marks themselves, but only recent ones (`marks_between`).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import pandas as pd
from sqlalchemy import and_, case, false, func, or_, select

from connectors.store import Store
from schemas.tables import staged_marks

SUSPENSION_MARK, PART_TIME_MARK = "E", "C2"     # as transforms.measures counts them


def _count(condition) -> object:
    return func.sum(case((condition, 1), else_=0))


def session_sums(store: Store, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Per enrolment with marks dated within [start, end]: sessions by category, suspensions, part-time
    sessions — the columns of `transforms.measures.session_sums`, computed by the database."""
    m = staged_marks.c
    stmt = (select(m.laestab, m.pupil_ref,
                   _count(m.category != "not_possible").label("possible_sessions"),
                   _count(m.category == "present").label("present_sessions"),
                   _count(m.category == "aea").label("aea_sessions"),
                   _count(m.category == "authorised").label("authorised_sessions"),
                   _count(m.category == "unauthorised").label("unauthorised_sessions"),
                   _count(m.mark == SUSPENSION_MARK).label("suspension_sessions"),
                   _count(m.mark == PART_TIME_MARK).label("part_time_sessions"))
            .where(m.session_date.between(start, end))
            .group_by(m.laestab, m.pupil_ref).order_by(m.laestab, m.pupil_ref))
    with store.engine.connect() as conn:
        result = conn.execute(stmt)
        frame = pd.DataFrame(result.all(), columns=list(result.keys()))
    for column in frame.columns[2:]:
        frame[column] = frame[column].astype(int)
    return frame


def marks_between(store: Store, start: dt.date | None, end: dt.date,
                  enrolments: Iterable[tuple[str, str]] | None = None) -> pd.DataFrame:
    """Staged marks dated within [start, end] (no start: from the first), optionally only for the
    given (laestab, pupil_ref) enrolments."""
    m = staged_marks.c
    columns = ["laestab", "pupil_ref", "session_date", "session", "mark", "category", "recorded_at"]
    dates = m.session_date <= end if start is None else m.session_date.between(start, end)
    if enrolments is None:
        return store.read(staged_marks, where=dates, columns=columns)
    wanted = sorted(set(enrolments))
    if not wanted:
        return store.read(staged_marks, where=false(), columns=columns)
    frames = [store.read(staged_marks, columns=columns, where=and_(dates, or_(
        *[and_(m.laestab == laestab, m.pupil_ref == ref) for laestab, ref in wanted[i:i + 200]])))
        for i in range(0, len(wanted), 200)]      # 400 bound values a batch: under SQLite's limit
    return pd.concat(frames, ignore_index=True)
