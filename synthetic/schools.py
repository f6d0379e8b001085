"""The synthetic LA's schools and their calendar overrides.

LAESTAB is the LA number (886, Kent) followed by a 4-digit establishment number: 2xxx for primaries,
4xxx/5xxx for secondaries. Most schools export with MIS layout A (pupils and attendance files);
a few export attendance only with layout B; one school's intraday file is late (never arrives).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import random
from dataclasses import dataclass

from schemas.calendar import Closure, SchoolCalendar, SchoolTimes

from synthetic.people import LA_NUMBER

MIS_A = "school_mis_a"
MIS_B = "school_mis_b"

_PRIMARY_NAMES = (
    "Hawthorn Primary School", "St Mildred's Church of England Primary School", "Oakwood Infant and Junior School",
    "Kingsmead Primary School", "Chartham Primary School", "Bishopstone Community Primary School",
    "Little Chart Church of England Primary School", "Westgate Primary School", "Ashford Oaks Primary School",
    "Marsh Lane Primary School", "St Augustine's Catholic Primary School", "Whitstable Bay Primary School",
    "Orchard Valley Primary School", "Romney Marsh Primary School", "Sandgate Community Primary School",
    "Hillview Primary School", "Meadowfield Primary Academy", "Copperfield Primary School",
)
_SECONDARY_NAMES = (
    "Riverside High School", "Weald of Kent Academy", "Canterbury Downs School", "Medway Valley School",
    "Thanet Coast Academy", "Folkestone Harbour School", "North Downs Grammar School",
    "Swale Community College", "Sevenoaks Ridge School", "Dover Cliffs Academy",
)


@dataclass(frozen=True)
class School:
    laestab: str
    urn: str
    name: str
    phase: str              # primary | secondary
    source_id: str          # school_mis_a | school_mis_b
    pupil_id_style: str     # adno (numeric admission number) | student (S + digits)

    @property
    def estab(self) -> str:
        return self.laestab[3:]

    @property
    def year_groups(self) -> tuple[str, ...]:
        if self.phase == "primary":
            return ("R", "1", "2", "3", "4", "5", "6")
        return ("7", "8", "9", "10", "11")


def make_schools(rng: random.Random, n_schools: int) -> list[School]:
    """`n_schools` schools, about a third of them secondaries; 1 in 4 (at least one when there are
    two or more schools) export with layout B."""
    n_secondary = max(1, round(n_schools / 3)) if n_schools > 1 else 1
    n_primary = n_schools - n_secondary
    n_mis_b = 0 if n_schools < 2 else max(1, n_schools // 4)
    phases = ["primary"] * n_primary + ["secondary"] * n_secondary
    # Layout B goes to alternating phases, starting with a primary when there is one.
    mis_b_positions: list[int] = []
    prim = [i for i, p in enumerate(phases) if p == "primary"]
    sec = [i for i, p in enumerate(phases) if p == "secondary"]
    while len(mis_b_positions) < n_mis_b:
        for pool in (prim, sec):
            if pool and len(mis_b_positions) < n_mis_b:
                mis_b_positions.append(pool.pop())
    estabs_p = rng.sample(range(2000, 3000), n_primary)
    estabs_s = rng.sample(range(4000, 6000), n_secondary)
    urns = rng.sample(range(118000, 149999), n_schools)
    names_p = rng.sample(_PRIMARY_NAMES, min(n_primary, len(_PRIMARY_NAMES)))
    names_s = rng.sample(_SECONDARY_NAMES, min(n_secondary, len(_SECONDARY_NAMES)))
    schools = []
    for i, phase in enumerate(phases):
        if phase == "primary":
            k = i
            estab, base = estabs_p[k], names_p[k % len(names_p)]
            name = base if k < len(names_p) else f"{base} ({k // len(names_p) + 1})"
        else:
            k = i - n_primary
            estab, base = estabs_s[k], names_s[k % len(names_s)]
            name = base if k < len(names_s) else f"{base} ({k // len(names_s) + 1})"
        source = MIS_B if i in mis_b_positions else MIS_A
        schools.append(School(f"{LA_NUMBER}{estab:04d}", f"{urns[i]:06d}", name, phase, source,
                              "student" if source == MIS_B else "adno"))
    return schools


def choose_late_school(rng: random.Random, schools: list[School]) -> School | None:
    """The school whose intraday file never arrives on the as-of day (a layout-A school)."""
    candidates = [s for s in schools if s.source_id == MIS_A]
    if len(schools) < 2 or not candidates:
        return None
    return rng.choice(candidates[1:] or candidates)


@dataclass(frozen=True)
class CalendarOverrides:
    """Per-school calendar differences written to calendar.toml and used to generate marks."""

    inset: dict[str, dt.date]                 # laestab -> INSET closure day
    am_start: dict[str, dt.time]              # laestab -> different AM session start


def plan_overrides(rng: random.Random, schools: list[School], base: SchoolCalendar,
                   as_of_date: dt.date, late: School | None) -> CalendarOverrides:
    """One school with an INSET day (a past Friday of the current term), one with a later AM start."""
    inset: dict[str, dt.date] = {}
    am_start: dict[str, dt.time] = {}
    term = base.term_of(as_of_date)
    others = [s for s in schools if s is not late]
    if term is not None and others:
        fridays = [d for d in base.school_days(None, term.start, as_of_date - dt.timedelta(days=7))
                   if d.weekday() == 4]
        if fridays:
            inset[others[0].laestab] = rng.choice(fridays)
    if len(others) > 1:
        am_start[others[-1].laestab] = dt.time(8, 55)
    return CalendarOverrides(inset, am_start)


def effective_calendar(base: SchoolCalendar, overrides: CalendarOverrides) -> SchoolCalendar:
    """`base` with the per-school overrides applied (what the pipeline will load from calendar.toml)."""
    schools = dict(base.schools)
    for laestab in sorted(set(overrides.inset) | set(overrides.am_start)):
        own = base.schools.get(laestab, base.default)
        sessions = dict(own.session_start)
        if laestab in overrides.am_start:
            sessions["AM"] = overrides.am_start[laestab]
        closures = own.closures
        if laestab in overrides.inset:
            day = overrides.inset[laestab]
            closures = closures + (Closure(day, day, "INSET"),)
        schools[laestab] = SchoolTimes(sessions, own.register_close_minutes, closures)
    return dataclasses.replace(base, schools=schools)
