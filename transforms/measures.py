"""Attendance measures per enrolment and period, by the DfE methodology (docs/dfe-rules.md#measures).

Per enrolment (school, pupil): possible sessions are those whose code is not `not_possible`;
attendance = present + approved educational activity; absence = authorised + unauthorised;
rates are over the pupil's own possible sessions. Persistent absence is an absence rate at or
above 10 %, severe absence at or above 50 % (both thresholds configurable; the comparison is
exact, so 2 of 20 sessions is persistent absence). Two sessions are one day of missed learning.
"""
from __future__ import annotations

import datetime as dt
from fractions import Fraction

import pandas as pd

from schemas.calendar import SchoolCalendar, academic_year_start
from transforms.record import as_of_date, between

MEASURE_COLUMNS = [
    "laestab", "pupil_ref", "period", "child_key", "period_start", "period_end",
    "possible_sessions", "present_sessions", "aea_sessions", "authorised_sessions",
    "unauthorised_sessions", "attendance_rate", "absence_rate", "persistent_absence",
    "severe_absence", "days_missed", "suspension_sessions", "part_time_sessions",
    "consecutive_unauthorised_days", "as_of",
]
SUSPENSION_MARK = "E"
PART_TIME_MARK = "C2"


def term_periods(calendar: SchoolCalendar, as_of: dt.datetime) -> list[tuple[str, dt.date, dt.date]]:
    """The periods measured on `as_of`: the academic year (1 August – 31 July) and the current term.

    In a holiday the current term is the latest term of the academic year that has started;
    before the first term of the year there is only the academic year.
    """
    day = as_of_date(as_of)
    year_start = academic_year_start(day)
    periods = [("academic_year", year_start, dt.date(year_start.year + 1, 7, 31))]
    term = calendar.term_of(day)
    if term is None:
        started = [t for t in calendar.terms if year_start <= t.start <= day]
        term = max(started, key=lambda t: t.start) if started else None
    if term is not None:
        periods.append((term.name, term.start, term.end))
    return periods


def _at_or_above(numerator: int, denominator: int, threshold: float) -> bool:
    """numerator / denominator >= threshold, exactly (no floating-point edge at the boundary)."""
    if denominator == 0:
        return False
    return Fraction(numerator, denominator) >= Fraction(str(threshold))


def latest_marks(marks: pd.DataFrame) -> pd.DataFrame:
    """One mark per (school, pupil, date, session): a later-recorded mark supersedes an earlier one."""
    keys = ["laestab", "pupil_ref", "session_date", "session"]
    if "recorded_at" in marks and marks.duplicated(keys).any():
        marks = marks.sort_values("recorded_at", kind="stable")
    return marks.drop_duplicates(keys, keep="last")


SUM_COLUMNS = ["laestab", "pupil_ref", "possible_sessions", "present_sessions", "aea_sessions",
               "authorised_sessions", "unauthorised_sessions", "suspension_sessions", "part_time_sessions"]


def session_sums(marks: pd.DataFrame) -> pd.DataFrame:
    """Per enrolment (school, pupil): sessions by statistical category, suspensions (`E`) and
    part-time timetable sessions (`C2`). The store computes the same sums in SQL
    (`connectors.attendance.session_sums`) so a year of marks is never held in memory."""
    if marks.empty:
        return pd.DataFrame(columns=SUM_COLUMNS)
    counted = pd.DataFrame({
        "laestab": marks["laestab"], "pupil_ref": marks["pupil_ref"],
        "possible_sessions": marks["category"] != "not_possible",
        "present_sessions": marks["category"] == "present",
        "aea_sessions": marks["category"] == "aea",
        "authorised_sessions": marks["category"] == "authorised",
        "unauthorised_sessions": marks["category"] == "unauthorised",
        "suspension_sessions": marks["mark"] == SUSPENSION_MARK,
        "part_time_sessions": marks["mark"] == PART_TIME_MARK,
    })
    return counted.groupby(["laestab", "pupil_ref"], sort=True).sum().astype(int).reset_index()[SUM_COLUMNS]


def attendance_measures(marks: pd.DataFrame, links: pd.DataFrame, *, period: str,
                        period_start: dt.date, period_end: dt.date, as_of: dt.datetime,
                        pa_threshold: float = 0.10, sa_threshold: float = 0.50,
                        consecutive: pd.DataFrame | None = None) -> pd.DataFrame:
    """The attendance_measures table for one period: one row per enrolment with marks in it.

    Marks dated outside [period_start, period_end], or after `as_of`'s date, are ignored. Rates are
    None and PA/SA False when an enrolment has no possible sessions. `consecutive` (from
    `consecutive_unauthorised_days`) supplies the current run; enrolments without one get 0.
    `child_key` comes from the school links (None while unlinked).
    """
    if marks.empty:
        return pd.DataFrame(columns=MEASURE_COLUMNS)
    last_day = min(period_end, as_of_date(as_of))
    marks = latest_marks(marks[between(marks["session_date"], period_start, last_day)])
    return measures_from_sums(session_sums(marks), links, period=period, period_start=period_start,
                              period_end=period_end, as_of=as_of, pa_threshold=pa_threshold,
                              sa_threshold=sa_threshold, consecutive=consecutive)


def measures_from_sums(sums: pd.DataFrame, links: pd.DataFrame, *, period: str, period_start: dt.date,
                       period_end: dt.date, as_of: dt.datetime, pa_threshold: float = 0.10,
                       sa_threshold: float = 0.50, consecutive: pd.DataFrame | None = None) -> pd.DataFrame:
    """The attendance_measures rows of one period from its per-enrolment `session_sums`."""
    if sums.empty:
        return pd.DataFrame(columns=MEASURE_COLUMNS)
    out = sums.sort_values(["laestab", "pupil_ref"], ignore_index=True).assign(
        period=period, period_start=period_start, period_end=period_end)
    for column in SUM_COLUMNS[2:]:
        out[column] = out[column].astype(int)
    absent = out["authorised_sessions"] + out["unauthorised_sessions"]
    attended = out["present_sessions"] + out["aea_sessions"]
    possible = out["possible_sessions"]
    out["attendance_rate"] = [a / p if p else None for a, p in zip(attended, possible)]
    out["absence_rate"] = [a / p if p else None for a, p in zip(absent, possible)]
    out["persistent_absence"] = [_at_or_above(a, p, pa_threshold) for a, p in zip(absent, possible)]
    out["severe_absence"] = [_at_or_above(a, p, sa_threshold) for a, p in zip(absent, possible)]
    out["days_missed"] = absent / 2.0

    out["consecutive_unauthorised_days"] = 0
    if consecutive is not None and not consecutive.empty:
        runs = consecutive.set_index(["laestab", "pupil_ref"])["consecutive_unauthorised_days"]
        joined = pd.MultiIndex.from_frame(out[["laestab", "pupil_ref"]]).map(runs.to_dict().get)
        out["consecutive_unauthorised_days"] = [int(v) if v is not None and not pd.isna(v) else 0 for v in joined]

    out["child_key"] = None
    if links is not None and not links.empty:
        school = links[links["source_kind"] == "school"]
        key_of = dict(zip(zip(school["laestab"], school["record_ref"]), school["child_key"]))
        out["child_key"] = [key_of.get((l, p)) for l, p in zip(out["laestab"], out["pupil_ref"])]
    out["as_of"] = as_of
    return out[MEASURE_COLUMNS]
