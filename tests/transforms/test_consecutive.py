"""Consecutive unauthorised school days, counted back over the school's calendar."""
import datetime as dt

import pandas as pd

from schemas.calendar import LONDON, SchoolCalendar
from schemas.codes import builtin_code_table
from transforms.consecutive import RUN_COLUMNS, consecutive_unauthorised_days

CODES = builtin_code_table()
SCHOOL, OTHER = "8864001", "8864002"
CALENDAR = SchoolCalendar.from_mapping({
    "terms": [{"name": "autumn", "start": dt.date(2026, 9, 3), "end": dt.date(2026, 12, 18)},
              {"name": "spring", "start": dt.date(2027, 1, 5), "end": dt.date(2027, 3, 26)}],
    "closures": [{"start": dt.date(2026, 10, 26), "end": dt.date(2026, 10, 30), "reason": "half term"}],
    "schools": {OTHER: {"closures": [{"start": dt.date(2026, 9, 15), "end": dt.date(2026, 9, 15),
                                      "reason": "INSET"}]}},
})
D = dt.date.fromisoformat


def day(date, am, pm=None, pupil="p1", laestab=SCHOOL):
    """Marks for one day; pm defaults to am; pass pm='' to leave the PM session unmarked."""
    pm = am if pm is None else pm
    d = D(date)
    return [{"laestab": laestab, "pupil_ref": pupil, "session_date": d, "session": s, "mark": m,
             "category": CODES.category(m, d)} for s, m in (("AM", am), ("PM", pm)) if m]


def run(days, as_of="2027-03-26", hour=18, **kw):
    rows = [r for d in days for r in d]
    marks = pd.DataFrame(rows, columns=["laestab", "pupil_ref", "session_date", "session", "mark", "category"])
    a = dt.datetime.combine(D(as_of), dt.time(hour), tzinfo=LONDON)
    out = consecutive_unauthorised_days(marks, CALENDAR, as_of=a, **kw)
    assert list(out.columns) == RUN_COLUMNS
    return {(r.laestab, r.pupil_ref): (r.consecutive_unauthorised_days, r.run_start) for r in out.itertuples()}


def test_run_continues_over_a_weekend():
    got = run([day("2026-09-09", "/"), day("2026-09-10", "N"), day("2026-09-11", "O"), day("2026-09-14", "G")])
    assert got[(SCHOOL, "p1")] == (3, D("2026-09-10"))


def test_closure_day_coded_hash_is_skipped():
    got = run([day("2026-09-11", "/"), day("2026-09-14", "N"), day("2026-09-15", "#"), day("2026-09-16", "N")])
    assert got[(SCHOOL, "p1")] == (2, D("2026-09-14"))


def test_partial_closure_counts_the_remaining_session():
    got = run([day("2026-09-11", "/"), day("2026-09-14", "N"), day("2026-09-15", "#", "N")])
    assert got[(SCHOOL, "p1")] == (2, D("2026-09-14"))


def test_school_specific_closure_in_the_calendar_is_skipped():
    got = run([day("2026-09-11", "/", laestab=OTHER), day("2026-09-14", "N", laestab=OTHER),
               day("2026-09-16", "N", laestab=OTHER)])
    assert got[(OTHER, "p1")] == (2, D("2026-09-14"))


def test_run_continues_over_half_term():
    got = run([day("2026-10-21", "/"), day("2026-10-22", "N"), day("2026-10-23", "N"), day("2026-11-02", "O")])
    assert got[(SCHOOL, "p1")] == (3, D("2026-10-22"))


def test_run_continues_from_autumn_into_spring_term():
    got = run([day("2026-12-16", "/"), day("2026-12-17", "N"), day("2026-12-18", "G"),
               day("2027-01-05", "O"), day("2027-01-06", "N")])
    assert got[(SCHOOL, "p1")] == (4, D("2026-12-17"))


def test_ten_school_days_over_two_weeks():
    weekdays = [D("2026-09-14") + dt.timedelta(days=i) for i in range(12) if (D("2026-09-14") + dt.timedelta(days=i)).weekday() < 5]
    got = run([day(d.isoformat(), "N") for d in weekdays])
    assert got[(SCHOOL, "p1")] == (10, D("2026-09-14"))


def test_present_day_breaks_the_run():
    got = run([day("2026-09-14", "N"), day("2026-09-15", "/"), day("2026-09-16", "N")])
    assert got[(SCHOOL, "p1")] == (1, D("2026-09-16"))


def test_half_day_with_an_authorised_session_breaks_the_run():
    got = run([day("2026-09-14", "N"), day("2026-09-15", "N", "M"), day("2026-09-16", "N")])
    assert got[(SCHOOL, "p1")] == (1, D("2026-09-16"))


def test_u_does_not_count_by_default_but_does_when_configured():
    days = [day("2026-09-11", "/"), day("2026-09-14", "N"), day("2026-09-15", "U"), day("2026-09-16", "N", "U")]
    assert run(days)[(SCHOOL, "p1")] == (0, None)
    assert run(days, count_u=True)[(SCHOOL, "p1")] == (3, D("2026-09-14"))
    assert run(days, unauthorised_marks=("G", "N", "O", "U"))[(SCHOOL, "p1")] == (0, None)


def test_school_day_without_marks_breaks_the_run():
    got = run([day("2026-09-14", "N"), day("2026-09-16", "N")])
    assert got[(SCHOOL, "p1")] == (1, D("2026-09-16"))


def test_latest_day_still_in_progress_is_left_out_without_breaking():
    days = [day("2026-09-14", "N"), day("2026-09-15", "N"), day("2026-09-16", "N", "")]
    assert run(days, as_of="2026-09-16", hour=10)[(SCHOOL, "p1")] == (2, D("2026-09-14"))


def test_earlier_day_with_a_session_unmarked_breaks_the_run():
    got = run([day("2026-09-14", "N"), day("2026-09-15", "N", ""), day("2026-09-16", "N")])
    assert got[(SCHOOL, "p1")] == (1, D("2026-09-16"))


def test_marks_after_as_of_are_ignored_and_pupils_are_separate():
    days = [day("2026-09-14", "N"), day("2026-09-15", "N"), day("2026-09-16", "/"),
            day("2026-09-14", "/", pupil="p2"), day("2026-09-15", "/", pupil="p2")]
    got = run(days, as_of="2026-09-15")
    assert got == {(SCHOOL, "p1"): (2, D("2026-09-14")), (SCHOOL, "p2"): (0, None)}


def test_no_marks():
    assert run([]) == {}
