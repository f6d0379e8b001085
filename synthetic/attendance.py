"""Attendance marks for every enrolment, and the extract files that carry them.

Each enrolment gets a target absence rate (most pupils 93-97 % attendance, about one in five
persistently absent, 1.5 % severely; children with a social worker far more), spent as realistic
events: illness spells (I), appointments (M), unauthorised days (O), term-time holidays (G), late
arrival after the register closed (U), suspensions (E, then B/K alternative provision), part-time
timetables (C2) and LA-arranged education (K). Lates before the register closed are L (present).

Some absences are first sent as `N` (no reason yet) and corrected to the real code in a later
nightly file; a few `N`s are never corrected. The extracts replay this: a nightly file per school
day holds that day's marks as first recorded plus the corrections made that day to earlier days.
"""
from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from schemas.calendar import LONDON, SchoolCalendar

from synthetic.pupils import Enrolment
from synthetic.schools import School

AM, PM = 0, 1
SESSION_NAMES = ("AM", "PM")
PRESENT = ("/", "\\")


@dataclass
class MarkPlan:
    """The final codes of one enrolment, by index into its school's day list."""

    enrolment: Enrolment
    first: int                                   # first day index on roll
    last: int                                    # last day index on roll (inclusive)
    codes: dict[int, list[str]] = field(default_factory=dict)
    minutes: dict[tuple[int, int], int] = field(default_factory=dict)
    # (day, session) -> (code first sent, day index of the nightly file that corrects it)
    placeholders: dict[tuple[int, int], tuple[str, int]] = field(default_factory=dict)
    profile: str = "normal"
    skip_am_on_as_of: bool = False               # no AM row in the as-of intraday file

    def code(self, i: int, s: int) -> str:
        return self.codes[i][s]

    def set(self, i: int, s: int, code: str) -> None:
        self.codes[i][s] = code
        self.minutes.pop((i, s), None)
        self.placeholders.pop((i, s), None)

    def is_present(self, i: int, s: int) -> bool:
        return self.codes[i][s] in PRESENT


class Row(NamedTuple):
    """One attendance row as an extract carries it (formatted later per layout)."""

    enrolment: Enrolment
    day: dt.date
    session: str
    mark: str
    minutes_late: int | None
    updated_at: dt.datetime | None      # only for layouts that carry it


def draw_profile(rng: random.Random, cwsw_now: bool, ever6: bool, sen: str, fsm: bool) -> tuple[str, float]:
    """(profile, target absence rate). Probabilities follow docs/dfe-rules.md#published-rates (Kent 2022/23)."""
    if cwsw_now:
        p_sa, p_pa = 0.07, 0.42
    elif ever6:
        p_sa, p_pa = 0.04, 0.28
    else:
        p_sa = 0.009 + (0.01 if sen == "E" else 0.0)
        p_pa = 0.125 + {"K": 0.12, "E": 0.18}.get(sen, 0.0) + (0.06 if fsm else 0.0)
    u = rng.random()
    if u < p_sa:
        return "severe", rng.uniform(0.52, 0.9)
    if u < p_sa + p_pa:
        return "pa", rng.uniform(0.11, 0.32)
    return "normal", rng.uniform(0.0, 0.025) if rng.random() < 0.35 else rng.uniform(0.025, 0.085)


_EVENTS = {  # code, days (lo, hi), whole day?, weight
    "normal": (("I", 1, 3, 0.60), ("M", 1, 1, 0.15), ("O", 1, 1, 0.07), ("G", 3, 5, 0.06),
               ("C", 1, 1, 0.03), ("R", 1, 1, 0.02), ("U", 1, 1, 0.07)),
    "pa": (("I", 1, 3, 0.42), ("O", 1, 2, 0.25), ("G", 3, 5, 0.10), ("M", 1, 1, 0.08),
           ("U", 1, 1, 0.10), ("C", 1, 1, 0.05)),
    "severe": (("O", 1, 4, 0.55), ("I", 1, 3, 0.30), ("N", 1, 1, 0.05), ("U", 1, 1, 0.10)),
}


class AttendancePlanner:
    """Plans the marks of every enrolment at one school."""

    def __init__(self, rng: random.Random, school: School, days: list[dt.date], as_of_index: int | None):
        self.rng, self.school, self.days = rng, school, days
        self.as_of_index = as_of_index          # index of the as-of day in `days`, or None
        # nightly files exist for every day before the as-of day
        self.n_nightly = as_of_index if as_of_index is not None else len(days)

    def plan(self, e: Enrolment, cwsw_now: bool, ever6: bool) -> MarkPlan | None:
        idx = [i for i, d in enumerate(self.days) if e.on_roll(d)]
        if not idx:
            return None
        plan = MarkPlan(e, idx[0], idx[-1], {i: ["/", "\\"] for i in idx})
        rng = self.rng
        plan.profile, rate = draw_profile(rng, cwsw_now, ever6, e.sen, e.fsm)
        budget = round(rate * 2 * len(idx))
        if plan.profile == "severe":
            budget -= self._block(plan, idx, budget)
        self._events(plan, idx, budget)
        self._lates(plan, idx)
        sec = self.school.phase == "secondary"
        p_susp = (0.03 if sec else 0.005) * (3 if cwsw_now else 1)
        if rng.random() < p_susp:
            self._suspension(plan, idx)
        if cwsw_now and rng.random() < 0.05 or e.sen == "E" and rng.random() < 0.02:
            self._part_time(plan, idx)
        if sec and rng.random() < (0.05 if cwsw_now else 0.008):
            self._alternative_provision(plan, idx)
        self._placeholders(plan)
        return plan

    def _free(self, plan: MarkPlan, i: int, s: int) -> bool:
        return plan.codes[i][s] in PRESENT and (i, s) not in plan.minutes

    def _block(self, plan: MarkPlan, idx: list[int], budget: int) -> int:
        """Severe absence: one long run of absent days, often still running on the as-of day."""
        length = min(len(idx), max(1, budget // 2))
        if self.rng.random() < 0.4:
            start = len(idx) - length
        else:
            start = self.rng.randrange(len(idx) - length + 1)
        used = 0
        for i in idx[start:start + length]:
            code = "O" if self.rng.random() < 0.85 else "I"
            plan.codes[i] = [code, code]
            used += 2
        return used

    def _events(self, plan: MarkPlan, idx: list[int], budget: int) -> None:
        rng, events = self.rng, _EVENTS[plan.profile]
        weights = [w for *_, w in events]
        attempts = 0
        while budget > 0 and attempts < 200:
            attempts += 1
            code, lo, hi, _ = rng.choices(events, weights)[0]
            if code == "G" and budget < 6:
                continue
            k = rng.randrange(len(idx))
            if code in ("M", "U"):
                s = AM if code == "U" or rng.random() < 0.5 else PM
                if self._free(plan, idx[k], s):
                    plan.codes[idx[k]][s] = code
                    if code == "U":
                        plan.minutes[(idx[k], s)] = rng.randrange(32, 75)
                    budget -= 1
                continue
            for i in idx[k:k + rng.randint(lo, hi)]:
                for s in (AM, PM):
                    if budget > 0 and self._free(plan, i, s):
                        plan.codes[i][s] = code
                        budget -= 1

    def _lates(self, plan: MarkPlan, idx: list[int]) -> None:
        p = {"normal": 0.015, "pa": 0.05, "severe": 0.05}[plan.profile]
        for i in idx:
            if self.rng.random() < p and self._free(plan, i, AM):
                plan.codes[i][AM] = "L"
                plan.minutes[(i, AM)] = self.rng.randrange(3, 28)

    def _suspension(self, plan: MarkPlan, idx: list[int]) -> None:
        """E for the first days of a suspension; from the sixth day alternative provision (B or K)."""
        rng = self.rng
        length = rng.randint(6, 8) if rng.random() < 0.1 else rng.randint(1, 3)
        k = rng.randrange(len(idx))
        for n, i in enumerate(idx[k:k + length]):
            code = "E" if n < 5 else rng.choice("BK")
            for s in (AM, PM):
                plan.set(i, s, code)

    def _part_time(self, plan: MarkPlan, idx: list[int]) -> None:
        """A part-time timetable: afternoons are C2 from some day to the end of the period."""
        k = self.rng.randrange(len(idx) // 2 + 1)
        for i in idx[k:]:
            if plan.codes[i][PM] in PRESENT:
                plan.set(i, PM, "C2")

    def _alternative_provision(self, plan: MarkPlan, idx: list[int]) -> None:
        """One day a week at LA-arranged provision (K) or another approved activity (B)."""
        weekday, code = self.rng.randrange(5), self.rng.choice("KKB")
        for i in idx:
            if self.days[i].weekday() == weekday:
                for s in (AM, PM):
                    if plan.codes[i][s] in PRESENT:
                        plan.set(i, s, code)

    def _placeholders(self, plan: MarkPlan) -> None:
        """Some I/O absences are first sent as N and corrected 1-4 school days later; a correction
        that would fall on or after the as-of day has not happened yet, so the N stands."""
        rng = self.rng
        for i, pair in plan.codes.items():
            for s in (AM, PM):
                code = pair[s]
                if code not in ("I", "O") or rng.random() >= (0.35 if code == "O" else 0.2):
                    continue
                fix = i + rng.randint(1, 4)
                if code == "O" and rng.random() < 0.05 or fix >= self.n_nightly:
                    pair[s] = "N"                      # never corrected (yet)
                else:
                    initial = "O" if code == "I" and rng.random() < 0.1 else "N"
                    plan.placeholders[(i, s)] = (initial, fix)

    def close_school_for_a_day(self, plans: list[MarkPlan], i: int) -> None:
        """An unplanned whole-school closure (#) on day index `i`."""
        for plan in plans:
            if i in plan.codes:
                for s in (AM, PM):
                    plan.set(i, s, "#")


def _stamp(day: dt.date, start: dt.time, minutes: int) -> dt.datetime:
    return dt.datetime.combine(day, start, tzinfo=LONDON) + dt.timedelta(minutes=minutes)


def extract_rows(rng: random.Random, school: School, days: list[dt.date], plans: list[MarkPlan],
                 calendar: SchoolCalendar, as_of_index: int | None, intraday: bool, stamps: bool
                 ) -> Iterator[tuple[dt.date, bool, list[Row]]]:
    """The school's attendance files in delivery order: (extract date, is_intraday, rows).

    Nightly file of day j: day j's marks as first recorded (placeholders as N) and, for earlier
    days corrected on day j, the corrected marks with a later Updated At. Intraday file of the
    as-of day: the AM marks only, without pupils whose mark was not taken. `stamps` adds the
    Updated At of each row (layout B).
    """
    def stamp(day: dt.date, start: dt.time, lo: int, hi: int) -> dt.datetime | None:
        return _stamp(day, start, rng.randrange(lo, hi)) if stamps else None

    times = calendar.times(school.laestab)
    am, pm = times.session_start["AM"], times.session_start["PM"]
    corrections: dict[int, list[tuple[MarkPlan, int, int]]] = {}
    for plan in plans:
        for (i, s), (_, fix) in plan.placeholders.items():
            corrections.setdefault(fix, []).append((plan, i, s))
    n_nightly = as_of_index if as_of_index is not None else len(days)
    for j in range(n_nightly):
        day = days[j]
        rows: list[Row] = []
        for plan in plans:
            if j not in plan.codes:
                continue
            for s, start in ((AM, am), (PM, pm)):
                mark = plan.placeholders.get((j, s), (plan.codes[j][s],))[0]
                rows.append(Row(plan.enrolment, day, SESSION_NAMES[s], mark, plan.minutes.get((j, s)),
                                stamp(day, start, 1, 25)))
        for plan, i, s in corrections.get(j, ()):
            rows.append(Row(plan.enrolment, days[i], SESSION_NAMES[s], plan.codes[i][s], plan.minutes.get((i, s)),
                            stamp(day, dt.time(15, 30), 0, 120)))
        yield day, False, rows
    if as_of_index is not None and intraday:
        day = days[as_of_index]
        rows = [Row(p.enrolment, day, "AM", p.codes[as_of_index][AM], p.minutes.get((as_of_index, AM)),
                    stamp(day, am, 1, 25))
                for p in plans if as_of_index in p.codes and not p.skip_am_on_as_of]
        yield day, True, rows
