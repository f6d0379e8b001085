"""Consecutive school days of unauthorised absence (docs/dfe-rules.md#consecutive-school-days).

Schools must tell the local authority about a pupil absent 10 consecutive school days with
unauthorised absence (G, N, O; U only if the LA says so — a U child did arrive). This computes
each enrolment's current run, counting back from the pupil's latest school day with marks.

Walking back one calendar day at a time, with the school's own calendar:
- a day that is not a school day (weekend, holiday, planned closure) is skipped, so a run carries
  on over half terms and from one term into the next;
- a school day on which every marked session is `not_possible` (`#`, `Y1`–`Y7`, `X`, ...) is
  skipped: it has no possible sessions;
- a school day counts when both sessions are marked and every possible session carries a run
  mark;
- a school day with a possible session carrying any other mark breaks the run;
- a school day with no marks at all is unknown and breaks the run: the count never includes a
  day nobody recorded (precision — never over-count);
- a school day with one session still unmarked is unknown: on the pupil's latest day (a register
  still in progress) it is left out without breaking the run; on an earlier day it breaks it.
Marks dated after `as_of` are ignored. Marks on days the calendar says are not school days are
ignored (so a school whose term dates differ from the calendar must have them configured).
"""
from __future__ import annotations

import datetime as dt

import pandas as pd

from schemas.calendar import SESSIONS, SchoolCalendar
from transforms.measures import latest_marks
from transforms.record import as_of_date, between, dates

RUN_COLUMNS = ["laestab", "pupil_ref", "consecutive_unauthorised_days", "run_start"]
_ONE_DAY = dt.timedelta(days=1)

# Verdict on one school day for one pupil.
_COUNTS, _SKIP, _BREAK, _INCOMPLETE = "counts", "skip", "break", "incomplete"


def _verdict(day_marks: list[tuple[str, str, str]], run_marks: set[str]) -> str:
    """day_marks: (session, mark, category) of one pupil on one school day."""
    possible = [(s, m) for s, m, c in day_marks if c != "not_possible"]
    if any(m not in run_marks for _, m in possible):
        return _BREAK
    if {s for s, _, _ in day_marks} < set(SESSIONS):
        return _INCOMPLETE
    return _COUNTS if possible else _SKIP


def run_marks(unauthorised_marks=("G", "N", "O"), count_u: bool = False) -> set[str]:
    """The marks that carry a run: `U` only when the LA counts it."""
    return (set(unauthorised_marks) - {"U"}) | ({"U"} if count_u else set())


def consecutive_unauthorised_days(marks: pd.DataFrame, calendar: SchoolCalendar, *,
                                  as_of: dt.datetime,
                                  unauthorised_marks=("G", "N", "O"),
                                  count_u: bool = False) -> pd.DataFrame:
    """Per enrolment with marks up to `as_of`: the current run of consecutive unauthorised school
    days and the day it started (None when there is no run). Rules in the module docstring."""
    return consecutive_runs(marks, calendar, as_of=as_of, unauthorised_marks=unauthorised_marks,
                            count_u=count_u)[RUN_COLUMNS]


def consecutive_runs(marks: pd.DataFrame, calendar: SchoolCalendar, *, as_of: dt.datetime,
                     unauthorised_marks=("G", "N", "O"), count_u: bool = False) -> pd.DataFrame:
    """`consecutive_unauthorised_days` with one more column, `unbroken`: True when counting back
    reached the enrolment's earliest mark without a break. Given only recent marks, those are the
    enrolments whose run may go on before them (the caller re-counts them with their history)."""
    carrying = run_marks(unauthorised_marks, count_u)
    if marks.empty:
        return pd.DataFrame(columns=RUN_COLUMNS + ["unbroken"])
    last_day = as_of_date(as_of)
    marks = marks[between(marks["session_date"], None, last_day)]
    marks = latest_marks(marks.assign(_day=dates(marks["session_date"])))

    by_day: dict[tuple[str, str], dict[dt.date, list]] = {}
    for laestab, pupil, day, session, mark, category in zip(
            marks["laestab"], marks["pupil_ref"], marks["_day"], marks["session"],
            marks["mark"], marks["category"]):
        by_day.setdefault((laestab, pupil), {}).setdefault(day, []).append((session, mark, category))

    school_day_cache: dict[tuple[str, dt.date], bool] = {}

    def is_school_day(laestab: str, day: dt.date) -> bool:
        key = (laestab, day)
        if key not in school_day_cache:
            school_day_cache[key] = calendar.is_school_day(laestab, day)
        return school_day_cache[key]

    rows = []
    for (laestab, pupil), days in sorted(by_day.items()):
        marked_school_days = [d for d in days if is_school_day(laestab, d)]
        run, run_start, unbroken = 0, None, True
        if marked_school_days:
            latest, earliest = max(marked_school_days), min(days)
            day = latest
            while day >= earliest:
                if is_school_day(laestab, day):
                    verdict = _BREAK if day not in days else _verdict(days[day], carrying)
                    if verdict == _INCOMPLETE and day != latest:
                        verdict = _BREAK
                    if verdict == _BREAK:
                        unbroken = False
                        break
                    if verdict == _COUNTS:
                        run, run_start = run + 1, day
                day -= _ONE_DAY
        rows.append({"laestab": laestab, "pupil_ref": pupil,
                     "consecutive_unauthorised_days": run, "run_start": run_start, "unbroken": unbroken})
    return pd.DataFrame(rows, columns=RUN_COLUMNS + ["unbroken"])
