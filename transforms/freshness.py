"""Source freshness: is each school's register feed up to date for `as_of`?

A school that has silently stopped sending is *late*, never "all present": its pupils have no
data for the days it has not sent, and only schools that have sent today's register can raise
"no mark" flags.
"""
from __future__ import annotations

import datetime as dt

import pandas as pd

from schemas.calendar import LONDON, SchoolCalendar

DEFAULT_EXPECTED_BY = dt.time(10, 0)


def expected_register_date(calendar: SchoolCalendar, laestab: str, as_of: dt.datetime,
                           expected_by: dt.time) -> dt.date | None:
    """The latest school day whose register the school should have sent by `as_of`."""
    local = as_of.astimezone(LONDON)
    day = local.date()
    if calendar.is_school_day(laestab, day) and local.time() >= expected_by:
        return day
    for back in range(1, 60):
        previous = day - dt.timedelta(days=back)
        if calendar.is_school_day(laestab, previous):
            return previous
    return None


def school_freshness(schools: dict, last_register: dict[str, dt.date], calendar: SchoolCalendar,
                     as_of: dt.datetime, source_expected_by: dict[str, dt.time] | None = None) -> pd.DataFrame:
    """One row per configured school: laestab, name, expected_date, last_register_date, status, hours_late.

    status: `fresh` (sent the expected register), `late` (has sent before, not the expected
    register), `never_sent` (configured but nothing received).
    """
    rows = []
    for laestab, school in sorted(schools.items()):
        expected_by = school.expected_by or (source_expected_by or {}).get(school.source_id) or DEFAULT_EXPECTED_BY
        expected = expected_register_date(calendar, laestab, as_of, expected_by)
        last = last_register.get(laestab)
        if last is None:
            status = "never_sent"
        elif expected is None or last >= expected:
            status = "fresh"
        else:
            status = "late"
        due = dt.datetime.combine(expected, expected_by, tzinfo=LONDON) if expected else None
        late_hours = round((as_of - due).total_seconds() / 3600, 1) if due and status != "fresh" and as_of > due else 0.0
        rows.append({"laestab": laestab, "name": school.name, "source_id": school.source_id,
                     "expected_by": expected_by.strftime("%H:%M"), "expected_date": expected,
                     "last_register_date": last, "status": status, "hours_late": late_hours})
    return pd.DataFrame(rows, columns=["laestab", "name", "source_id", "expected_by", "expected_date",
                                       "last_register_date", "status", "hours_late"])


def expected_extract_date(as_of: dt.datetime, expected_by: dt.time) -> dt.date:
    """A daily extract (social care, CAMHS): today's once its delivery time has passed, else yesterday's."""
    local = as_of.astimezone(LONDON)
    return local.date() if local.time() >= expected_by else local.date() - dt.timedelta(days=1)


def source_freshness(sources: dict, last_extract: dict[str, dt.date], as_of: dt.datetime) -> pd.DataFrame:
    """One row per daily source with an `expected_by` time: source_id, expected_by, expected_date,
    last_extract_date (from the file names' extract dates), status fresh | late | never_sent."""
    rows = []
    for source_id, source in sorted(sources.items()):
        expected = expected_extract_date(as_of, source.expected_by)
        last = last_extract.get(source_id)
        status = "never_sent" if last is None else ("fresh" if last >= expected else "late")
        rows.append({"source_id": source_id, "expected_by": source.expected_by.strftime("%H:%M"),
                     "expected_date": expected, "last_extract_date": last, "status": status})
    return pd.DataFrame(rows, columns=["source_id", "expected_by", "expected_date", "last_extract_date", "status"])
