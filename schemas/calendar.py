"""The school calendar: term dates, closures, session start times and register close.

LA-wide defaults with per-school overrides. "No mark after the register closed" and
"consecutive school days" are computed against it.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")
SESSIONS = ("AM", "PM")


@dataclass(frozen=True)
class Term:
    name: str
    start: dt.date
    end: dt.date


@dataclass(frozen=True)
class Closure:
    start: dt.date
    end: dt.date
    reason: str = ""

    def covers(self, day: dt.date) -> bool:
        return self.start <= day <= self.end


@dataclass(frozen=True)
class SchoolTimes:
    session_start: dict[str, dt.time]
    register_close_minutes: int
    closures: tuple[Closure, ...] = ()


def _time(value: str | dt.time) -> dt.time:
    return value if isinstance(value, dt.time) else dt.time.fromisoformat(value)


@dataclass
class SchoolCalendar:
    terms: tuple[Term, ...]
    default: SchoolTimes
    schools: dict[str, SchoolTimes] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, data: dict) -> "SchoolCalendar":
        terms = tuple(Term(t["name"], t["start"], t["end"]) for t in data.get("terms", []))
        close = int(data.get("register_close_minutes", 30))
        sessions = {k: _time(v) for k, v in data.get("sessions", {"AM": "08:40", "PM": "13:15"}).items()}
        closures = tuple(Closure(c["start"], c["end"], c.get("reason", "")) for c in data.get("closures", []))
        default = SchoolTimes(sessions, close, closures)
        schools = {}
        for laestab, spec in data.get("schools", {}).items():
            own = tuple(Closure(c["start"], c["end"], c.get("reason", "")) for c in spec.get("closures", []))
            schools[str(laestab)] = SchoolTimes(
                {**sessions, **{k: _time(v) for k, v in spec.get("sessions", {}).items()}},
                int(spec.get("register_close_minutes", close)),
                closures + own,
            )
        return cls(terms, default, schools)

    def times(self, laestab: str | None) -> SchoolTimes:
        return self.schools.get(laestab or "", self.default)

    def term_of(self, day: dt.date) -> Term | None:
        return next((t for t in self.terms if t.start <= day <= t.end), None)

    def is_school_day(self, laestab: str | None, day: dt.date) -> bool:
        """A weekday in term that is not a planned closure for this school."""
        if day.weekday() >= 5 or self.term_of(day) is None:
            return False
        return not any(c.covers(day) for c in self.times(laestab).closures)

    def school_days(self, laestab: str | None, start: dt.date, end: dt.date) -> list[dt.date]:
        days, day = [], start
        while day <= end:
            if self.is_school_day(laestab, day):
                days.append(day)
            day += dt.timedelta(days=1)
        return days

    def register_close(self, laestab: str | None, day: dt.date, session: str) -> dt.datetime:
        """When this school's register for the session closes, in Europe/London."""
        times = self.times(laestab)
        start = dt.datetime.combine(day, times.session_start[session], tzinfo=LONDON)
        return start + dt.timedelta(minutes=times.register_close_minutes)

    def closed_registers(self, laestab: str | None, as_of: dt.datetime) -> list[tuple[dt.date, str]]:
        """Sessions of `as_of`'s day whose register has closed by `as_of` (empty on a non-school day)."""
        local = as_of.astimezone(LONDON)
        if not self.is_school_day(laestab, local.date()):
            return []
        return [(local.date(), s) for s in SESSIONS if self.register_close(laestab, local.date(), s) <= local]


def academic_year_start(day: dt.date) -> dt.date:
    """1 August of the academic year containing `day`."""
    year = day.year if day.month >= 8 else day.year - 1
    return dt.date(year, 8, 1)
