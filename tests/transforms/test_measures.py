"""Attendance measures by the DfE methodology, hand-counted."""
import datetime as dt

import pandas as pd
import pytest

from schemas.calendar import LONDON, SchoolCalendar
from schemas.codes import builtin_code_table
from transforms.measures import MEASURE_COLUMNS, _at_or_above, attendance_measures, term_periods

CODES = builtin_code_table()
START, END = dt.date(2026, 9, 3), dt.date(2026, 12, 18)
AS_OF = dt.datetime(2026, 12, 18, 18, 0, tzinfo=LONDON)
CALENDAR = SchoolCalendar.from_mapping({
    "terms": [{"name": "autumn", "start": START, "end": END},
              {"name": "spring", "start": dt.date(2027, 1, 5), "end": dt.date(2027, 3, 26)}],
})


def marks_for(codes, pupil="p1", laestab="8864001", first=dt.date(2026, 9, 7)):
    """One mark per session, AM then PM, on consecutive calendar days from `first`."""
    rows = []
    for i, code in enumerate(codes):
        day = first + dt.timedelta(days=i // 2)
        rows.append({"laestab": laestab, "pupil_ref": pupil, "session_date": day,
                     "session": "AM" if i % 2 == 0 else "PM", "mark": code,
                     "category": CODES.category(code, day)})
    return rows


def measure(rows, links=None, **kw):
    marks = pd.DataFrame(rows, columns=["laestab", "pupil_ref", "session_date", "session", "mark", "category"])
    links = links if links is not None else pd.DataFrame(
        columns=["source_kind", "record_ref", "laestab", "child_key", "linked_on"])
    args = dict(period="autumn", period_start=START, period_end=END, as_of=AS_OF)
    args.update(kw)
    return attendance_measures(marks, links, **args)


ALL_CODES = ["/", "\\", "L", "K", "V", "P", "W", "B", "C", "C1", "C2", "E", "I", "M", "J1", "S", "T",
             "R", "G", "N", "O", "U", "D", "X", "Q", "Y1", "Y2", "Y3", "Y4", "Y5", "Y6", "Y7", "Z", "#"]


def test_every_category_is_counted():
    out = measure(marks_for(ALL_CODES))
    assert list(out.columns) == MEASURE_COLUMNS
    row = out.iloc[0]
    assert (row.present_sessions, row.aea_sessions, row.authorised_sessions, row.unauthorised_sessions) == (3, 5, 10, 4)
    assert row.possible_sessions == 22            # 34 sessions, 12 not possible
    assert row.attendance_rate == pytest.approx(8 / 22)
    assert row.absence_rate == pytest.approx(14 / 22)
    assert row.days_missed == 7.0
    assert (row.suspension_sessions, row.part_time_sessions) == (1, 1)
    assert row.persistent_absence and row.severe_absence
    assert (row.period, row.period_start, row.period_end) == ("autumn", START, END)
    assert row.consecutive_unauthorised_days == 0 and row.child_key is None


@pytest.mark.parametrize("absent, possible, pa", [(2, 20, True), (3, 30, True), (7, 70, True), (2, 21, False)])
def test_persistent_absence_boundary(absent, possible, pa):
    row = measure(marks_for(["N"] * absent + ["/"] * (possible - absent))).iloc[0]
    assert bool(row.persistent_absence) is pa
    assert bool(row.severe_absence) is False


def test_just_under_ten_percent_is_not_persistent():
    assert _at_or_above(999, 10000, 0.10) is False
    assert _at_or_above(1000, 10000, 0.10) is True


@pytest.mark.parametrize("absent, sa", [(10, True), (9, False)])
def test_severe_absence_boundary(absent, sa):
    row = measure(marks_for(["I"] * absent + ["/"] * (20 - absent))).iloc[0]
    assert bool(row.severe_absence) is sa
    assert bool(row.persistent_absence) is True


def test_thresholds_are_configurable():
    row = measure(marks_for(["N"] * 3 + ["/"] * 17), pa_threshold=0.20, sa_threshold=0.15).iloc[0]
    assert not row.persistent_absence and row.severe_absence


def test_no_possible_sessions():
    row = measure(marks_for(["#", "#", "X", "Y4"])).iloc[0]
    assert row.possible_sessions == 0
    assert row.attendance_rate is None and row.absence_rate is None
    assert not row.persistent_absence and not row.severe_absence
    assert row.days_missed == 0.0


def test_marks_outside_the_period_or_after_as_of_are_ignored():
    rows = (marks_for(["N", "N"], first=dt.date(2026, 9, 2))          # before the period
            + marks_for(["/", "/"], first=dt.date(2026, 9, 7))
            + marks_for(["G", "G"], first=dt.date(2026, 9, 8)))        # after as_of
    row = measure(rows, as_of=dt.datetime(2026, 9, 7, 16, 0, tzinfo=LONDON)).iloc[0]
    assert (row.possible_sessions, row.present_sessions, row.unauthorised_sessions) == (2, 2, 0)


def test_per_enrolment_with_child_key_and_consecutive_run():
    rows = marks_for(["N", "N"], pupil="p1", laestab="8864001") + marks_for(["/", "I"], pupil="p2", laestab="8864002")
    links = pd.DataFrame([("school", "p1", "8864001", "c1", "upn")],
                         columns=["source_kind", "record_ref", "laestab", "child_key", "linked_on"])
    runs = pd.DataFrame([("8864001", "p1", 1, dt.date(2026, 9, 7))],
                        columns=["laestab", "pupil_ref", "consecutive_unauthorised_days", "run_start"])
    out = measure(rows, links=links, consecutive=runs).set_index("pupil_ref")
    assert out.loc["p1", "child_key"] == "c1" and out.loc["p2", "child_key"] is None
    assert out.loc["p1", "consecutive_unauthorised_days"] == 1
    assert out.loc["p2", "consecutive_unauthorised_days"] == 0
    assert out.loc["p2", "days_missed"] == 0.5


def test_later_recorded_mark_supersedes():
    rows = marks_for(["N"])
    rows[0]["recorded_at"] = dt.datetime(2026, 9, 7, 9, 0, tzinfo=LONDON)
    rows.append({**rows[0], "mark": "I", "category": "authorised",
                 "recorded_at": dt.datetime(2026, 9, 7, 9, 40, tzinfo=LONDON)})
    marks = pd.DataFrame(rows)
    row = attendance_measures(marks, pd.DataFrame(), period="autumn", period_start=START, period_end=END,
                              as_of=AS_OF).iloc[0]
    assert (row.possible_sessions, row.authorised_sessions, row.unauthorised_sessions) == (1, 1, 0)


def test_term_periods():
    year = ("academic_year", dt.date(2026, 8, 1), dt.date(2027, 7, 31))
    autumn = ("autumn", START, END)
    assert term_periods(CALENDAR, dt.datetime(2026, 11, 10, 9, 0, tzinfo=LONDON)) == [year, autumn]
    assert term_periods(CALENDAR, dt.datetime(2026, 12, 28, 9, 0, tzinfo=LONDON)) == [year, autumn]
    assert term_periods(CALENDAR, dt.datetime(2026, 8, 20, 9, 0, tzinfo=LONDON)) == [year]
