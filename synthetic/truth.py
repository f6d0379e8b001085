"""Ground truth of the synthetic LA, computed independently of the pipeline (no transforms/ import).

The measures are computed from the marks as the files deliver them: every row is replayed in
delivery order and the last mark for a pupil, date and session wins (the pipeline's supersession
rule), so corrections and uncorrected `N`s count as the pipeline should count them.

Files written to `ground_truth/` (CSV, UTF-8):
- pupils.csv: one row per enrolment (laestab, school_pupil_id) with DfE measures for the academic
  year up to the as-of date (only marks present in the files; the as-of day's AM marks from the
  intraday file count, its PM does not exist yet).
- records.csv: every source record with its true child: school (record_id = school pupil id, with
  laestab), social_care (record_id = PersonID), health (record_id = LocalPatientID); `noise` lists
  what was done to the record (nickname, typos, swapped DOB, missing or mistyped UPN, twin, moved,
  ...); for social care it starts with the record's history kind (current | historical | old |
  short_breaks | pre_adoption). In layout
  B files First Name / Last Name carry the preferred names when the enrolment has them. A sealed
  pre-adoption identity is a different child_id from the adopted child at school: the two must
  never be linked.
- cohorts.csv: one row per true child (pupils, social-care-only, health-only, sealed identities).
- expected_flags.csv: flags the rules in flag_rules.toml should raise on the as-of day.
- quarantine.csv: every row (row_number blank: every whole file) the pipeline must quarantine, with
  the canonical field at fault and a short reason kind; written by synthetic.generate from
  synthetic.bad_input (header only when no bad input was planted).
- data_quality.csv: the planted rows the pipeline must stage with a data-quality issue (same
  columns; reason_kind placeholder_name or implausible_dob), from synthetic.bad_input. The pipeline
  records other issues too (the generator's own noise, e.g. mistyped UPNs); these are the planted ones.
"""
from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from schemas.calendar import SchoolCalendar, academic_year_start

from synthetic.attendance import Row
from synthetic.health import Patient
from synthetic.pupils import Child, Enrolment
from synthetic.social_care import SHORT_BREAKS, ScPerson, six_years_before

# Statistical category of each code the generator can emit (docs/dfe-rules.md#attendance-codes); kept here, apart
# from schemas/codes.py, so the ground truth is an independent check of the code table.
CATEGORY = {
    "/": "present", "\\": "present", "L": "present",
    "K": "aea", "V": "aea", "P": "aea", "W": "aea", "B": "aea",
    "C": "authorised", "C1": "authorised", "C2": "authorised", "E": "authorised", "I": "authorised",
    "M": "authorised", "J1": "authorised", "S": "authorised", "T": "authorised", "R": "authorised",
    "G": "unauthorised", "N": "unauthorised", "O": "unauthorised", "U": "unauthorised",
    "D": "not_possible", "X": "not_possible", "Z": "not_possible", "#": "not_possible",
}
RUN_MARKS = ("G", "N", "O")
_RANK = {"CIN": 1, "CPP": 2, "CLA": 3}


class FinalMarks:
    """The last delivered mark for every (laestab, school pupil id, date, session)."""

    def __init__(self) -> None:
        self.marks: dict[tuple[str, str], dict[dt.date, list[str | None]]] = {}

    def replay(self, rows: list[Row]) -> None:
        for r in rows:
            days = self.marks.setdefault(r.enrolment.key, {})
            pair = days.get(r.day)
            if pair is None:
                pair = days[r.day] = [None, None]
            pair[0 if r.session == "AM" else 1] = r.mark

    def of(self, key: tuple[str, str]) -> dict[dt.date, list[str | None]]:
        return self.marks.get(key, {})


@dataclass
class Measures:
    possible: int = 0
    present: int = 0
    aea: int = 0
    authorised: int = 0
    unauthorised: int = 0
    suspension: int = 0
    part_time: int = 0
    consecutive_unauthorised_days: int = 0

    @property
    def absence_rate(self) -> float | None:
        return (self.authorised + self.unauthorised) / self.possible if self.possible else None


def consecutive_unauthorised_days(days: dict[dt.date, list[str | None]]) -> int:
    """The run of the pupil's most recent consecutive school days of unauthorised absence.

    Counting back from the latest day with marks: a day whose possible sessions (marked sessions
    whose code is not `not_possible`) all carry G, N or O extends the run; a day with no possible
    session (a `#` closure, or no marks at all - weekends, holidays and INSET days carry none) is
    skipped; any other day (a present, AEA, authorised or U session) ends it. The latest day with
    a session still unmarked (today's afternoon register not yet taken) is not yet a whole day of
    absence: it neither extends nor ends the run unless a marked session ends it.
    """
    run = 0
    latest = max(days) if days else None
    for day in sorted(days, reverse=True):
        possible = [m for m in days[day] if m is not None and CATEGORY[m] != "not_possible"]
        if not possible:
            continue
        if not all(m in RUN_MARKS for m in possible):
            break
        if day == latest and None in days[day]:
            continue
        run += 1
    return run


def measures(days: dict[dt.date, list[str | None]], start: dt.date, end: dt.date) -> Measures:
    m = Measures()
    window = {d: pair for d, pair in days.items() if start <= d <= end}
    for pair in window.values():
        for mark in pair:
            if mark is None:
                continue
            category = CATEGORY[mark]
            if category == "not_possible":
                continue
            m.possible += 1
            setattr(m, category, getattr(m, category) + 1)
            m.suspension += mark == "E"
            m.part_time += mark == "C2"
    m.consecutive_unauthorised_days = consecutive_unauthorised_days(window)
    return m


@dataclass
class Cohort:
    current_cwsw: bool = False
    ever6_cwsw: bool = False
    ever6_status: str = ""
    cla_now: bool = False
    restricted: bool = False
    allocated_worker_id: str = ""


def cohort(person: ScPerson | None, day: dt.date) -> Cohort:
    """Cohorts on `day` (docs/dfe-rules.md#cohorts).

    current_cwsw: an episode of any type (CIN, CPP, CLA) with start <= day and no end or end >= day.
    ever6_cwsw: an episode with start <= day and (no end or end >= the same date six years earlier),
    CLA episodes with a short-break legal status (V1, V3, V4) excluded; ever6_status the highest of
    those types, CLA > CPP > CIN. cla_now: an open CLA episode that is not a short break.
    allocated_worker_id: the worker(s) on an open allocation (empty: the case sits with duty).
    """
    c = Cohort()
    if person is None:
        return c
    window = six_years_before(day)
    c.restricted = person.restricted
    best = 0
    for e in person.episodes:
        is_open = e.start <= day and (e.end is None or e.end >= day)
        c.current_cwsw |= is_open
        short_break = e.episode_type == "CLA" and e.legal_status in SHORT_BREAKS
        if is_open and e.episode_type == "CLA" and not short_break:
            c.cla_now = True
        if not short_break and e.start <= day and (e.end is None or e.end >= window):
            best = max(best, _RANK[e.episode_type])
    c.ever6_cwsw = best > 0
    c.ever6_status = {0: "", 1: "CIN", 2: "CPP", 3: "CLA"}[best]
    c.allocated_worker_id = ";".join(a.worker_id for a in person.allocations
                                     if a.start <= day and (a.end is None or a.end >= day))
    return c


def write_table(path: Path, header: list[str], rows) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        for row in rows:
            w.writerow(row)
            n += 1
    return n


def _b(value: bool) -> str:
    return "True" if value else "False"


PUPILS_HEADER = ["child_id", "laestab", "school_pupil_id", "source_id", "year_group", "sen_provision",
                 "fsm_eligible", "admission_date", "leaving_date", "period_start", "period_end",
                 "possible_sessions", "present_sessions", "aea_sessions", "authorised_sessions",
                 "unauthorised_sessions", "absence_rate", "persistent_absence", "severe_absence",
                 "suspension_sessions", "part_time_sessions", "consecutive_unauthorised_days"]


def write_pupils(path: Path, enrolments: list[Enrolment], final: FinalMarks, as_of_date: dt.date,
                 pa: float = 0.10, sa: float = 0.50) -> dict[tuple[str, str], Measures]:
    start = academic_year_start(as_of_date)
    out: dict[tuple[str, str], Measures] = {}
    rows = []
    for e in enrolments:
        m = out[e.key] = measures(final.of(e.key), start, as_of_date)
        rate = m.absence_rate
        mis_b = e.school.source_id == "school_mis_b"
        rows.append([e.child.child_id, e.school.laestab, e.pupil_id, e.school.source_id, e.year_group,
                     "" if mis_b else e.sen, "" if mis_b else _b(e.fsm), e.admission.isoformat(),
                     e.leaving.isoformat() if e.leaving else "", start.isoformat(), as_of_date.isoformat(),
                     m.possible, m.present, m.aea, m.authorised, m.unauthorised,
                     "" if rate is None else f"{rate:.6f}", _b(rate is not None and rate >= pa),
                     _b(rate is not None and rate >= sa), m.suspension, m.part_time,
                     m.consecutive_unauthorised_days])
    write_table(path, PUPILS_HEADER, rows)
    return out


def write_records(path: Path, enrolments: list[Enrolment], persons: list[ScPerson], patients: list[Patient]) -> int:
    rows = [["school", e.school.source_id, e.school.laestab, e.pupil_id, e.child.child_id, ";".join(e.noise)]
            for e in enrolments]
    rows += [["social_care", "social_care", "", p.person_id, p.child.child_id, ";".join([p.kind] + p.noise)]
             for p in persons]
    rows += [["health", "camhs", "", p.local_patient_id, p.child.child_id, ";".join(p.noise)] for p in patients]
    return write_table(path, ["source_kind", "source_id", "laestab", "record_id", "child_id", "noise"], rows)


COHORTS_HEADER = ["child_id", "in_school", "in_social_care", "in_health", "current_cwsw", "ever6_cwsw",
                  "ever6_status", "cla_now", "restricted", "allocated_worker_id", "camhs_open"]


def write_cohorts(path: Path, children: list[Child], enrolments: list[Enrolment], persons: list[ScPerson],
                  patients: list[Patient], as_of_date: dt.date) -> dict[str, Cohort]:
    in_school = {e.child.child_id for e in enrolments}
    person_of = {p.child.child_id: p for p in persons}
    patient_of = {p.child.child_id: p for p in patients}
    out = {}
    rows = []
    for child in children:
        c = out[child.child_id] = cohort(person_of.get(child.child_id), as_of_date)
        patient = patient_of.get(child.child_id)
        camhs_open = patient is not None and any(r.status in ("waiting", "open") for r in patient.referrals)
        rows.append([child.child_id, _b(child.child_id in in_school), _b(child.child_id in person_of),
                     _b(patient is not None), _b(c.current_cwsw), _b(c.ever6_cwsw), c.ever6_status,
                     _b(c.cla_now), _b(c.restricted), c.allocated_worker_id, _b(camhs_open)])
    write_table(path, COHORTS_HEADER, rows)
    return out


FLAGS_HEADER = ["child_id", "laestab", "school_pupil_id", "rule", "session_date", "session", "reason"]


def expected_flags(enrolments: list[Enrolment], final: FinalMarks, cohorts: dict[str, Cohort],
                   calendar: SchoolCalendar, as_of: dt.datetime, reporting: set[str]) -> list[list[str]]:
    """Flags due on the as-of day for current-CWSW pupils on roll at schools whose file for the day
    arrived (`reporting`): unexplained_absence_today for a closed register session marked N or O or
    with no mark, suspension for E. The late school's pupils are left out: its file is missing, a
    feed-lateness matter, not evidence about any one child."""
    day = as_of.date()
    rows = []
    for e in enrolments:
        c = cohorts[e.child.child_id]
        if not c.current_cwsw or c.restricted or not e.on_roll(day) or e.school.laestab not in reporting:
            continue
        pair = final.of(e.key).get(day, [None, None])
        for _, session in calendar.closed_registers(e.school.laestab, as_of):
            mark = pair[0 if session == "AM" else 1]
            base = [e.child.child_id, e.school.laestab, e.pupil_id]
            if mark is None:
                rows.append(base + ["unexplained_absence_today", day.isoformat(), session, "no_mark_after_register_close"])
            elif mark in ("N", "O"):
                rows.append(base + ["unexplained_absence_today", day.isoformat(), session, f"mark_{mark}"])
            elif mark == "E":
                rows.append(base + ["suspension", day.isoformat(), session, "mark_E"])
    return rows
