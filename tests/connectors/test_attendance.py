"""The store's per-enrolment session sums are exactly the pandas sums over the same marks."""
from __future__ import annotations

import datetime as dt
import random

import pandas as pd

from connectors.attendance import marks_between, session_sums
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


def test_session_sums_in_the_database_equal_the_pandas_sums(store):
    marks = _marks()
    store.upsert(t.staged_marks, marks, newer_column="recorded_at")
    start, end = START + dt.timedelta(days=3), START + dt.timedelta(days=20)
    in_period = marks[(marks["session_date"] >= start) & (marks["session_date"] <= end)]
    want = measures.session_sums(in_period).reset_index(drop=True)
    got = session_sums(store, start, end)
    assert list(got.columns) == measures.SUM_COLUMNS
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


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
