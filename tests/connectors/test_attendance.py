"""The store's per-enrolment session sums (weekly sums kept as marks are staged, and the marks of
part weeks) are exactly the pandas sums over the same marks."""
from __future__ import annotations

import datetime as dt
import random

import pandas as pd
import pytest
from sqlalchemy import delete

from connectors.attendance import marks_between, refresh_weeks, school_weeks, session_sums, stage_marks
from schemas import tables as t
from schemas.codes import builtin_code_table
from transforms import measures

CODES = builtin_code_table()
MARKS = ["/", "\\", "L", "N", "O", "G", "U", "I", "M", "E", "C2", "B", "K", "#", "D", "X"]
START = dt.date(2026, 9, 7)


def _marks(n_pupils: int = 40, days: int = 30, seed: int = 3) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for pupil in range(n_pupils):
        laestab = "8864001" if pupil % 3 else "8864002"
        for offset in range(days):
            day = START + dt.timedelta(days=offset)
            for session in ("AM", "PM"):
                if rng.random() < 0.05:
                    continue                       # an unmarked session
                mark = rng.choice(MARKS)
                rows.append({"laestab": laestab, "pupil_ref": f"{pupil:064x}", "session_date": day,
                             "session": session, "mark": mark, "category": CODES.category(mark, day),
                             "minutes_late": None, "recorded_at": pd.Timestamp("2026-10-10T16:00Z"),
                             "source_id": "s", "file_id": "f" * 64, "row_number": len(rows) + 1})
    return pd.DataFrame(rows)


def _want(marks: pd.DataFrame, start: dt.date, end: dt.date) -> pd.DataFrame:
    in_period = marks[(marks["session_date"] >= start) & (marks["session_date"] <= end)]
    return measures.session_sums(in_period).reset_index(drop=True)


@pytest.mark.parametrize("first, last", [(3, 20), (0, 29), (7, 13), (8, 10), (2, 2), (5, 6)])
def test_session_sums_in_the_database_equal_the_pandas_sums(store, first, last):
    marks = _marks()
    stage_marks(store, marks)
    start, end = START + dt.timedelta(days=first), START + dt.timedelta(days=last)
    got = session_sums(store, start, end)
    assert list(got.columns) == measures.SUM_COLUMNS
    pd.testing.assert_frame_equal(got, _want(marks, start, end), check_dtype=False)


def test_weekly_sums_follow_corrected_and_removed_marks(store):
    marks = _marks(n_pupils=8, days=21)
    stage_marks(store, marks)
    corrected = marks.iloc[::7].assign(mark="O", category="unauthorised",
                                       recorded_at=pd.Timestamp("2026-10-11T16:00Z"))
    stage_marks(store, corrected)
    marks = pd.concat([marks.drop(index=corrected.index), corrected]).sort_index()
    removed = marks.iloc[3::11]
    with store.begin() as conn:
        for row in removed.itertuples(index=False):
            conn.execute(delete(t.staged_marks).where(
                t.staged_marks.c.laestab == row.laestab, t.staged_marks.c.pupil_ref == row.pupil_ref,
                t.staged_marks.c.session_date == row.session_date, t.staged_marks.c.session == row.session))
        refresh_weeks(store, school_weeks(removed))
    marks = marks.drop(index=removed.index)
    end = START + dt.timedelta(days=20)
    pd.testing.assert_frame_equal(session_sums(store, START, end), _want(marks, START, end), check_dtype=False)
    assert len(store.read(t.attendance_weeks)) == marks.groupby(
        ["laestab", "pupil_ref", marks["session_date"].map(lambda d: d - dt.timedelta(days=d.weekday()))]).ngroups


def test_marks_between_reads_only_the_dates_and_enrolments_asked_for(store):
    marks = _marks(n_pupils=6, days=10)
    store.upsert(t.staged_marks, marks, newer_column="recorded_at")
    start = START + dt.timedelta(days=5)
    recent = marks_between(store, start, START + dt.timedelta(days=9))
    assert len(recent) == int((marks["session_date"] >= start).sum())
    one = ("8864002", f"{0:064x}")
    history = marks_between(store, None, START + dt.timedelta(days=9), [one])
    assert set(zip(history["laestab"], history["pupil_ref"])) == {one}
    assert len(history) == int(((marks["laestab"] == one[0]) & (marks["pupil_ref"] == one[1])).sum())
    assert marks_between(store, None, START, []).empty
