"""Generate a synthetic local authority: feed files, its configuration folder and the ground truth.

`generate_la(out_dir, as_of=...)` writes
- out_dir/inbox/<source_id>/...  the feeds (school_mis_a, school_mis_b, social_care, camhs);
- out_dir/config/                sources.toml, schools.toml, calendar.toml (use as TETHER_CONFIG_DIR);
- out_dir/ground_truth/          pupils.csv, records.csv, cohorts.csv, expected_flags.csv, scenario.csv,
                                 quarantine.csv, data_quality.csv (never read by the pipeline; see
                                 synthetic.truth and synthetic.bad_input).
Everything is drawn from `random.Random(seed)`: the same arguments give byte-identical files.

With `bad_input` (the default) a few tens of malformed rows and one file to refuse are added to the
feeds after they are written, from a separate random stream: the other ground-truth files are the
same either way, quarantine.csv lists every row the pipeline must quarantine and data_quality.csv
every planted row it must stage with a data-quality issue (header only without bad input).

Attendance: a nightly file per school per school day from the first term start of the academic
year to the day before the as-of date; on the as-of day an intraday file `..._<date>T0930.csv`
with the AM marks (only when as_of is 09:30 or later), except from the late school.
"""
from __future__ import annotations

import datetime as dt
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from schemas.calendar import LONDON, SchoolCalendar, academic_year_start
from schemas.config import load_config

from synthetic import truth, writers
from synthetic.bad_input import DATA_QUALITY_HEADER, QUARANTINE_HEADER, BadInput, plant_bad_input
from synthetic.attendance import AM, PM, AttendancePlanner, MarkPlan, extract_rows
from synthetic.health import build_camhs
from synthetic.people import IdentifierFactory
from synthetic.pupils import PupilBuilder
from synthetic.schools import (MIS_A, MIS_B, choose_late_school, effective_calendar, make_schools,
                               plan_overrides)
from synthetic.social_care import SocialCareBuilder

SOURCES = (MIS_A, MIS_B, "social_care", "camhs")
INTRADAY_TIME = dt.time(9, 30)


@dataclass
class FeedCount:
    files: int = 0
    rows: int = 0


@dataclass
class GenerationReport:
    out_dir: Path
    inbox_dir: Path
    config_dir: Path
    ground_truth_dir: Path
    seed: int
    as_of: dt.datetime
    n_schools: int
    n_children: int                      # true children (pupils, social-care-only, health-only, sealed identities)
    n_enrolments: int                    # school records (a mover has two)
    late_school: str | None              # LAESTAB of the school with no intraday file on the as-of day
    intraday_schools: list[str] = field(default_factory=list)
    inset_school: str | None = None      # calendar.toml: school with an INSET closure day
    am_start_school: str | None = None   # calendar.toml: school with a later AM start
    closure_school: str | None = None    # school that marked a whole day '#'
    closure_day: dt.date | None = None
    feeds: dict[str, FeedCount] = field(default_factory=dict)     # by canonical feed
    sources: dict[str, FeedCount] = field(default_factory=dict)   # by source id
    expected_flags: int = 0
    bad_rows: int = 0                    # planted rows the pipeline must quarantine (incl. refused files' rows)
    refused_files: int = 0               # planted files the pipeline must refuse whole

    def summary(self) -> list[str]:
        """Human-readable lines for a CLI (counts only, no identifiers)."""
        lines = [f"synthetic LA in {self.out_dir} (seed {self.seed}, as of {self.as_of.isoformat()})",
                 f"  {self.n_schools} schools, {self.n_enrolments} school records, {self.n_children} children"]
        lines += [f"  {source}: {c.files} files, {c.rows} rows" for source, c in self.sources.items()]
        if self.bad_rows or self.refused_files:
            lines.append(f"  bad input planted: {self.bad_rows} rows to quarantine, {self.refused_files} "
                         f"file{'s' if self.refused_files != 1 else ''} to refuse (ground_truth/quarantine.csv)")
        lines.append(f"  late school (no intraday file): {self.late_school or '-'}; "
                     f"expected flags today: {self.expected_flags}")
        lines.append(f"  config: {self.config_dir}  ground truth: {self.ground_truth_dir}")
        return lines

    def count(self, source: str, feed: str, rows: int) -> None:
        for table, key in ((self.feeds, feed), (self.sources, source)):
            c = table.setdefault(key, FeedCount())
            c.files += 1
            c.rows += rows

    def add_rows(self, source: str, feed: str, rows: int) -> None:
        """Rows added to files already counted."""
        for table, key in ((self.feeds, feed), (self.sources, source)):
            table.setdefault(key, FeedCount()).rows += rows


def _term_start(calendar: SchoolCalendar, day: dt.date) -> dt.date:
    year_start = academic_year_start(day)
    starts = [t.start for t in calendar.terms if year_start <= t.start <= day]
    return min(starts) if starts else year_start


def _plant_as_of_day(rng: random.Random, plans: list[MarkPlan], cwsw: set[str], index_of: dict[str, int]) -> None:
    """Make the as-of morning interesting: CWSW pupils with no AM mark, N, O, E (suspension) and U
    (arrived late: no flag), a couple of other pupils with no mark, and pupils missing for the last
    twelve school days (a consecutive unauthorised run)."""
    on_day = [p for p in plans if index_of.get(p.enrolment.school.laestab) in p.codes]
    cands = [p for p in on_day if p.enrolment.child.child_id in cwsw]
    others = [p for p in on_day if p.enrolment.child.child_id not in cwsw]
    cands = rng.sample(cands, len(cands))
    others = rng.sample(others, len(others))
    k = max(1, len(cands) // 40)
    scenario = ["none"] * k + ["N"] * k + ["O", "U"] + ["E"] * max(1, k // 2) + ["run"]
    for plan, what in zip(cands, scenario):
        i = index_of[plan.enrolment.school.laestab]
        if what == "none":
            plan.skip_am_on_as_of = True
        elif what in ("N", "O"):
            plan.set(i, AM, what)
        elif what == "U":
            plan.set(i, AM, "U")
            plan.minutes[(i, AM)] = rng.randrange(35, 70)
        elif what == "E":
            for day in (i - 1, i):
                if day in plan.codes:
                    plan.set(day, AM, "E")
                    plan.set(day, PM, "E")
        else:
            _missing_run(plan, i)
    for plan in others[:2]:
        plan.skip_am_on_as_of = True
    for plan in others[2:2 + max(1, len(on_day) // 1500)]:
        _missing_run(plan, index_of[plan.enrolment.school.laestab])


def _missing_run(plan: MarkPlan, last: int) -> None:
    days = sorted(i for i in plan.codes if i <= last)[-12:]
    for i in days:
        code = "N" if i == last else "O"
        plan.set(i, AM, code)
        plan.set(i, PM, code)


def generate_la(out_dir: Path, *, seed: int = 1, n_schools: int = 12, n_pupils: int = 6000,
                as_of: dt.datetime, calendar: SchoolCalendar | None = None,
                progress: Callable[[str], None] | None = None, bad_input: bool = True) -> GenerationReport:
    """Write a synthetic LA into `out_dir` and return what was written. `as_of` must be timezone
    aware (Europe/London is used for dates and register times). Existing generated folders under
    `out_dir` (inbox/<source>, ground_truth) are replaced. `bad_input` plants malformed rows and a
    file to refuse (synthetic.bad_input) without changing the measures, cohorts or flags."""
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware (Europe/London)")
    if n_schools < 1 or n_pupils < n_schools:
        raise ValueError("need at least one school and one pupil per school")
    say = progress or (lambda _msg: None)
    out_dir = Path(out_dir)
    as_of = as_of.astimezone(LONDON)
    d = as_of.date()
    base = calendar if calendar is not None else load_config().calendar
    rng = random.Random(seed)
    ids = IdentifierFactory(rng)
    inbox, config_dir, truth_dir = out_dir / "inbox", out_dir / "config", out_dir / "ground_truth"
    for folder in [inbox / s for s in SOURCES] + [truth_dir]:
        if folder.exists():
            shutil.rmtree(folder)

    say("schools and calendar")
    schools = make_schools(rng, n_schools)
    late = choose_late_school(rng, schools)
    overrides = plan_overrides(rng, schools, base, d, late)
    cal = effective_calendar(base, overrides)
    term_start = _term_start(cal, d)

    say("pupils and enrolments")
    pupils = PupilBuilder(rng, ids, schools, term_start, d)
    pupils.build(n_pupils)
    enrolments = pupils.enrolments

    say("social care")
    sc = SocialCareBuilder(rng, ids, pupils, d)
    sc.build(enrolments)
    person_of = {p.child.child_id: p for p in sc.persons}
    status = {cid: truth.cohort(p, d) for cid, p in person_of.items()}
    cwsw = {cid for cid, c in status.items() if c.current_cwsw}

    say("CAMHS referrals")
    pupil_children = list({e.child.child_id: e.child for e in enrolments}.values())
    patients = build_camhs(rng, pupil_children, cwsw, pupils, d)

    say("attendance marks")
    report = GenerationReport(out_dir, inbox, config_dir, truth_dir, seed, as_of, len(schools), 0, len(enrolments),
                              late.laestab if late else None,
                              inset_school=next(iter(overrides.inset), None),
                              am_start_school=next(iter(overrides.am_start), None))
    intraday_ok = as_of.time() >= INTRADAY_TIME
    days_of, index_of, plans_of = {}, {}, {}
    for school in schools:
        days = cal.school_days(school.laestab, term_start, d)
        as_of_index = days.index(d) if d in days else None
        planner = AttendancePlanner(rng, school, days, as_of_index)
        plans = []
        for e in (e for e in enrolments if e.school is school):
            c = status.get(e.child.child_id)
            plan = planner.plan(e, c is not None and c.current_cwsw, c is not None and c.ever6_cwsw)
            if plan is not None:
                plans.append(plan)
        days_of[school.laestab], plans_of[school.laestab] = days, plans
        if as_of_index is not None and intraday_ok and school is not late:
            index_of[school.laestab] = as_of_index
    _plant_as_of_day(rng, [p for s in schools for p in plans_of[s.laestab]], cwsw, index_of)
    report.intraday_schools = sorted(index_of)
    closable = [s for s in schools if s is not late and s.laestab not in overrides.inset
                and len(days_of[s.laestab]) > 6]
    if closable:
        school = closable[rng.randrange(len(closable))]
        n_past = len([x for x in days_of[school.laestab] if x < d])
        i = rng.randrange(1, max(2, n_past - 3))
        AttendancePlanner(rng, school, days_of[school.laestab], None).close_school_for_a_day(plans_of[school.laestab], i)
        report.closure_school, report.closure_day = school.laestab, days_of[school.laestab][i]

    say("attendance files")
    final = truth.FinalMarks()
    for school in schools:
        days = days_of[school.laestab]
        folder = inbox / school.source_id
        as_of_index = days.index(d) if d in days else None
        for day, intraday, rows in extract_rows(rng, school, days, plans_of[school.laestab], cal, as_of_index,
                                                school.laestab in index_of, school.source_id == MIS_B):
            name = writers.attendance_file_name(school, day, f"{INTRADAY_TIME:%H%M}" if intraday else None)
            report.count(school.source_id, "attendance", writers.write_attendance(folder / name, school, rows))
            final.replay(rows)

    say("pupils on roll")
    for school in (s for s in schools if s.source_id == MIS_A):
        past = [x for x in days_of[school.laestab] if x < d]
        roll_days = sorted({x for k, x in enumerate(past) if k == 0 or k == len(past) - 1 or x.weekday() == 4})
        mine = [e for e in enrolments if e.school is school]
        for day in roll_days:
            path = inbox / MIS_A / f"{school.laestab}_pupils_{day:%Y%m%d}.csv"
            report.count(MIS_A, "pupils", writers.write_pupils(path, mine, day))

    say("social care and CAMHS extracts")
    workers = {w.worker_id: w for w in sc.workers}
    for name, rows in writers.write_social_care(inbox / "social_care", sc.persons, workers, d).items():
        report.count("social_care", name.rsplit("_", 1)[0], rows)
    for name, rows in writers.write_camhs(inbox / "camhs", patients, d).items():
        report.count("camhs", "camhs_referrals", rows)

    planted = BadInput()
    if bad_input:
        say("bad input")
        planted = plant_bad_input(random.Random(f"{seed}:bad-input"), inbox, schools, d)
        for (source, feed), rows in planted.added_rows.items():
            report.add_rows(source, feed, rows)
        for source, feed, _name, rows in planted.new_files:
            report.count(source, feed, rows)
        report.bad_rows, report.refused_files = planted.bad_rows, planted.refused_files

    say("configuration")
    writers.write_config(config_dir, schools, cal)

    say("ground truth")
    truth.write_pupils(truth_dir / "pupils.csv", enrolments, final, d)
    truth.write_records(truth_dir / "records.csv", enrolments, sc.persons, patients)
    cohorts = truth.write_cohorts(truth_dir / "cohorts.csv", pupils.children, enrolments, sc.persons, patients, d)
    flags = truth.expected_flags(enrolments, final, cohorts, cal, as_of, set(index_of))
    truth.write_table(truth_dir / "expected_flags.csv", truth.FLAGS_HEADER, flags)
    truth.write_table(truth_dir / "quarantine.csv", QUARANTINE_HEADER, planted.truth_rows())
    truth.write_table(truth_dir / "data_quality.csv", DATA_QUALITY_HEADER, planted.issue_rows())
    report.expected_flags = len(flags)
    report.n_children = len(pupils.children)
    truth.write_table(truth_dir / "scenario.csv", ["key", "value"], [
        ["seed", seed], ["as_of", as_of.isoformat()], ["n_schools", len(schools)],
        ["n_children", report.n_children], ["n_enrolments", len(enrolments)],
        ["late_school", report.late_school or ""], ["intraday_schools", ";".join(report.intraday_schools)],
        ["inset_school", report.inset_school or ""],
        ["inset_day", overrides.inset[report.inset_school].isoformat() if report.inset_school else ""],
        ["am_start_school", report.am_start_school or ""],
        ["closure_school", report.closure_school or ""],
        ["closure_day", report.closure_day.isoformat() if report.closure_day else ""],
        ["mis_b_schools", ";".join(s.laestab for s in schools if s.source_id == MIS_B)],
    ])
    say(f"done: {report.n_children} children, {sum(c.files for c in report.sources.values())} files")
    return report
