"""Tether at a local authority's size, against a DuckDB reference over the same files.

Generates an LA's year in MIS layout A (synthetic.la_scale: one nightly file per school per school
day, default 300 schools, 150,000 pupils, 190 days = 57 million marks), then in the same run:

1. reference: DuckDB reads every attendance CSV and computes each pupil's possible sessions,
   absence (authorised + unauthorised) and persistent / severe absence (>= 10 % / >= 50 % of
   possible sessions, DOMAIN.md), taking for each session the mark of the latest file that sent it.
   It is written without Tether's transforms; it reads only the code categories of
   schemas/defaults/attendance_codes.toml (a withdrawn code counts in its successor's category;
   dates of validity are not checked: the generator writes only codes in force);
2. Tether's full recompute from the landing folder, stage by stage as the full_refresh job runs
   them (orchestration.stages: land and stage every source, link, record, measures, cohorts,
   flags, deliveries), on SQLite or, with --database postgres, a fresh PostgreSQL database
   (dropped afterwards);
3. the agreement check: every pupil's academic-year possible sessions, absence and PA/SA flags in
   Tether's attendance_measures against the reference (Adno mapped to pupil_ref with the
   deployment's token key); the number of disagreeing pupils must be 0;
4. one more school day (every school's nightly file) and one intraday tick (one school's morning
   register file, `..._<date>T0930.csv`) through the same stages to refreshed flags, and the
   agreement check again.

Per stage it prints rows, rows per second, wall and CPU time (of this process: a PostgreSQL
server's CPU is not in it), peak resident memory (sampled from /proc/self/statm) and the wall
time as a multiple of the reference's. Progress goes to stderr, the figures to stdout.

Usage: python benchmarks/scale.py [--schools 300] [--pupils 150000] [--days 190]
       [--database sqlite|postgres] [--keep DIR] [--skip-reference] [--seed 1]
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import resource
import secrets
import shutil
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import pandas as pd

NIGHTLY_AS_OF = dt.time(18, 30)     # after the day's nightly files (a file without a time counts as 18:00)
TICK_AS_OF = dt.time(9, 45)         # after the 09:30 intraday files
PG_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
PA_SHARE, SA_SHARE = 10, 2          # absence * share >= possible: 10 % and 50 % (DOMAIN.md section 2)


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- measuring a stage -----------------------------------------------------------------------

def resident_bytes() -> int:
    """This process's resident memory now (Linux /proc; elsewhere its peak so far)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Figure:
    """One stage of one phase: what it processed and what it cost."""

    phase: str
    stage: str
    rows: int
    unit: str
    wall: float = 0.0
    cpu: float = 0.0
    peak_rss: int = 0
    note: str = ""

    @property
    def rate(self) -> float:
        return self.rows / self.wall if self.wall else float("inf")


class Meter:
    """Wall time, CPU time and peak resident memory of the code inside `with Meter() as m:`."""

    def __init__(self, interval: float = 0.02):
        self.interval = interval
        self.wall = self.cpu = 0.0
        self.peak_rss = 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_rss = max(self.peak_rss, resident_bytes())

    def __enter__(self) -> "Meter":
        self.peak_rss = resident_bytes()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        self._cpu0, self._t0 = _cpu_seconds(), time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self._t0
        self.cpu = _cpu_seconds() - self._cpu0
        self._stop.set()
        self._thread.join()
        self.peak_rss = max(self.peak_rss, resident_bytes())


def measured(figures: list[Figure], phase: str, stage: str, unit: str, fn: Callable[[], object],
             rows: Callable[[object], int], note: Callable[[object], str] = lambda _out: "") -> object:
    """Run one stage under a Meter, append its Figure, return what the stage returned."""
    say(f"  {phase}: {stage} ...")
    with Meter() as m:
        out = fn()
    figure = Figure(phase, stage, int(rows(out)), unit, m.wall, m.cpu, m.peak_rss, note(out))
    figures.append(figure)
    say(f"  {phase}: {stage}: {figure.rows:,} {unit} in {m.wall:.2f} s" + (f" ({figure.note})" if figure.note else ""))
    return out


# --- the reference ---------------------------------------------------------------------------

def code_categories() -> dict[str, str]:
    """Each register code's statistical category, from the built-in code table; a withdrawn code
    that maps to a successor counts in the successor's category."""
    text = resources.files("schemas").joinpath("defaults/attendance_codes.toml").read_text("utf-8")
    codes = tomllib.loads(text)["codes"]
    return {code: codes[spec.get("maps_to", code)]["category"] for code, spec in codes.items()}


# The latest file that sent a session wins: files sort by extract date, then time (a nightly file
# without a time counts as 18:00). Only Adno, Date, Session and Mark are used, all ASCII, so the
# files are read as Latin-1 (DuckDB has no Windows-1252 without an extension).
REFERENCE_SQL = r"""
WITH sent AS (
    SELECT regexp_extract(filename, '(\d{7})_attendance_\d{8}(T\d{4})?\.csv$', 1) AS laestab,
           regexp_extract(filename, '_attendance_(\d{8})', 1)
             || coalesce(nullif(regexp_extract(filename, 'T(\d{4})\.csv$', 1), ''), '1800') AS sent_at,
           "Adno" AS adno, strptime("Date", '%d/%m/%Y')::DATE AS session_date, "Session" AS session,
           "Mark" AS mark
    FROM read_csv($files, header = true, all_varchar = true, filename = true, encoding = 'latin-1')
), latest AS (
    SELECT laestab, adno, session_date, session, arg_max(mark, sent_at) AS mark
    FROM sent
    WHERE session_date BETWEEN $year_start AND $last_day
    GROUP BY laestab, adno, session_date, session
)
SELECT laestab, adno,
       count(*) FILTER (WHERE c.category <> 'not_possible') AS possible,
       count(*) FILTER (WHERE c.category IN ('authorised', 'unauthorised')) AS absence,
       count(*) FILTER (WHERE c.category IS NULL) AS unknown_marks
FROM latest LEFT JOIN codes AS c USING (mark)
GROUP BY laestab, adno
"""


def reference(attendance_dir: Path, year_start: dt.date, last_day: dt.date) -> tuple[pd.DataFrame, int]:
    """Per enrolment (laestab, adno): possible, absence, persistent_absence, severe_absence; and the
    number of threads DuckDB ran with."""
    import duckdb
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        threads = int(con.execute("SELECT current_setting('threads')").fetchone()[0])
        con.execute("CREATE TABLE codes (mark VARCHAR, category VARCHAR)")
        con.executemany("INSERT INTO codes VALUES (?, ?)", sorted(code_categories().items()))
        out = con.execute(REFERENCE_SQL, {"files": str(attendance_dir / "*_attendance_*.csv"),
                                          "year_start": year_start, "last_day": last_day}).df()
    finally:
        con.close()
    if out["unknown_marks"].any():
        raise ValueError(f"{int(out['unknown_marks'].sum())} marks are not in the code table")
    possible, absence = out["possible"].astype(int), out["absence"].astype(int)
    return out.assign(possible=possible, absence=absence,
                      persistent_absence=(possible > 0) & (absence * PA_SHARE >= possible),
                      severe_absence=(possible > 0) & (absence * SA_SHARE >= possible)
                      ).drop(columns="unknown_marks"), threads


# --- Tether's figures and the agreement check -------------------------------------------------

FIGURES = ["possible", "absence", "persistent_absence", "severe_absence"]


def tether_figures(store) -> pd.DataFrame:
    """Academic-year measures per enrolment as Tether stored them."""
    from schemas import tables as t
    m = store.read(t.attendance_measures, where=t.attendance_measures.c.period == "academic_year",
                   columns=["laestab", "pupil_ref", "possible_sessions", "authorised_sessions",
                            "unauthorised_sessions", "persistent_absence", "severe_absence"])
    return pd.DataFrame({
        "laestab": m["laestab"].astype(str), "pupil_ref": m["pupil_ref"].astype(str),
        "possible": m["possible_sessions"].astype(int),
        "absence": (m["authorised_sessions"] + m["unauthorised_sessions"]).astype(int),
        "persistent_absence": m["persistent_absence"].astype(bool),
        "severe_absence": m["severe_absence"].astype(bool)})


def disagreements(expected: pd.DataFrame, tether: pd.DataFrame, token_key: bytes) -> pd.DataFrame:
    """Enrolments whose figures differ, or that only one side has (pseudonymous: pupil_ref only)."""
    from transforms.pseudonymise import pupil_ref
    expected = expected.assign(pupil_ref=[pupil_ref(token_key, laestab, adno) for laestab, adno
                                          in zip(expected["laestab"], expected["adno"])]).drop(columns="adno")
    both = expected.merge(tether, on=["laestab", "pupil_ref"], how="outer", suffixes=("_ref", "_tether"),
                          indicator=True)
    differs = both["_merge"] != "both"
    for name in FIGURES:
        differs |= both[f"{name}_ref"].astype(object).ne(both[f"{name}_tether"].astype(object))
    return both[differs]


# --- the deployment ----------------------------------------------------------------------------

@contextlib.contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    """os.environ with `env` added (the keys are read from it), restored afterwards."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def database(kind: str, root: Path, admin_url: str = PG_ADMIN_URL) -> Iterator[str]:
    """A store URL: a SQLite file under `root`, or a fresh PostgreSQL database dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{(root / 'tether.sqlite').resolve()}"
        return
    import psycopg2
    from psycopg2 import sql
    from sqlalchemy.engine import make_url
    admin = make_url(admin_url)
    name = f"tether_scale_{os.getpid()}_{secrets.token_hex(3)}"

    def run(statement) -> None:
        conn = psycopg2.connect(host=admin.host, port=admin.port, user=admin.username,
                                password=admin.password, dbname=admin.database)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
        finally:
            conn.close()
    run(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        run(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@dataclass
class Result:
    la: object                                  # synthetic.la_scale.ScaleLA
    figures: list[Figure] = field(default_factory=list)
    reference_seconds: float | None = None
    reference_cpu: float | None = None
    reference_rss: int = 0
    reference_threads: int = 0
    disagreeing: dict[str, int] = field(default_factory=dict)   # check -> pupils that disagree
    enrolments: dict[str, int] = field(default_factory=dict)    # check -> enrolments compared
    pa_share: float | None = None
    sa_share: float | None = None


def _count_marks(store, day: dt.date | None = None) -> int:
    from sqlalchemy import func, select
    from schemas import tables as t
    stmt = select(func.count()).select_from(t.staged_marks)
    if day is not None:
        stmt = stmt.where(t.staged_marks.c.session_date == day)
    with store.engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def _stages(ctx, figures: list[Figure], phase: str) -> None:
    """Land and stage every source, then the record, signals, flags and outbox, each measured."""
    from orchestration import stages
    sources = list(ctx.config.sources.values())
    staged: dict = {}

    def land_all() -> int:
        return sum(stages.land_source(ctx, s)["files_new"] for s in sources)

    def stage_all() -> dict:
        for s in sources:
            staged[s.source_id] = stages.stage_source(ctx, s)
        return staged

    today = ctx.as_of.date()
    measured(figures, phase, "land (encrypt, checksum, manifest)", "files", land_all, lambda n: n)
    measured(figures, phase, "stage (read, validate, pseudonymise, store)", "rows", stage_all,
             lambda out: sum(f.get("rows_read", 0) for f in out.values()),
             lambda out: f"{sum(f.get('rows_quarantined', 0) for f in out.values())} quarantined")
    measured(figures, phase, "link", "records", lambda: stages.link(ctx), lambda out: out["records"])
    measured(figures, phase, "record", "children", lambda: stages.build_record(ctx), lambda out: out["children"])
    marks = _count_marks(ctx.store)
    measured(figures, phase, "measures", "marks", lambda: stages.compute_measures(ctx), lambda _out: marks)
    measured(figures, phase, "cohorts", "members", lambda: stages.compute_cohorts(ctx),
             lambda out: sum(out.values()))
    today_marks = _count_marks(ctx.store, today)
    measured(figures, phase, "flags", "marks today", lambda: stages.raise_flags(ctx), lambda _out: today_marks,
             lambda out: f"{out['flags_today']} flags today, {out['flags_new']} new")
    measured(figures, phase, "deliveries", "deliveries", lambda: stages.queue_deliveries(ctx),
             lambda out: out["deliveries_new"])


def _check(result: Result, name: str, ctx, la, last_day: dt.date, *, timed: bool) -> None:
    from schemas.calendar import academic_year_start
    say(f"reference ({name}): DuckDB over {la.attendance_dir} ...")
    with Meter() as m:
        expected, threads = reference(la.attendance_dir, academic_year_start(last_day), last_day)
    if timed:
        result.reference_seconds, result.reference_cpu, result.reference_rss = m.wall, m.cpu, m.peak_rss
        result.reference_threads = threads
        result.pa_share = float(expected["persistent_absence"].mean())
        result.sa_share = float(expected["severe_absence"].mean())
    say(f"reference ({name}): {len(expected):,} enrolments in {m.wall:.2f} s")
    wrong = disagreements(expected, tether_figures(ctx.store), ctx.keys.token_key)
    result.disagreeing[name] = len(wrong)
    result.enrolments[name] = len(expected)
    say(f"agreement ({name}): {len(wrong)} of {len(expected):,} pupils disagree with the reference")


def run_benchmark(root: Path, *, schools: int, pupils: int, days: int, database_kind: str = "sqlite",
                  skip_reference: bool = False, seed: int = 1, admin_url: str = PG_ADMIN_URL) -> Result:
    """Generate the LA under `root`, run the reference and Tether, check and time; see the docstring."""
    from connectors.store_setup import init_store
    from orchestration.cli import demo_environment
    from orchestration.resources import TetherContext
    from schemas.calendar import LONDON
    from synthetic.la_scale import generate_scale_la

    root.mkdir(parents=True, exist_ok=True)
    say(f"generating {schools} schools, {pupils:,} pupils, {days} days in {root / 'la'}")
    t0 = time.perf_counter()
    la = generate_scale_la(root / "la", n_schools=schools, n_pupils=pupils, n_days=days, seed=seed,
                           progress=lambda msg: say(f"  {msg}"))
    say(f"generated {la.rows:,} rows in {la.files:,} files in {time.perf_counter() - t0:.1f} s")
    result = Result(la)
    moments = {"full recompute": dt.datetime.combine(la.days[-1], NIGHTLY_AS_OF, tzinfo=LONDON),
               "next school day": dt.datetime.combine(la.extra_day, NIGHTLY_AS_OF, tzinfo=LONDON),
               "intraday tick": dt.datetime.combine(la.tick_day, TICK_AS_OF, tzinfo=LONDON)}
    held = {"next school day": la.held_files["day"], "intraday tick": la.held_files["tick"]}
    with database(database_kind, root, admin_url) as url:
        env = demo_environment(root, moments["full recompute"].isoformat())
        env["TETHER_DATABASE_URL"] = url
        contexts = []
        try:
            with environment(env):
                init_store(url, env["TETHER_DATA_DIR"])[0].dispose()
                for phase, as_of in moments.items():
                    for path in held.get(phase, []):
                        shutil.move(path, la.attendance_dir / path.name)
                    ctx = TetherContext(url, env["TETHER_CONFIG_DIR"], env["TETHER_DATA_DIR"], as_of.isoformat())
                    contexts.append(ctx)
                    ctx.keys                 # recorded in the new store on the first run
                    say(f"{phase} (as of {as_of:%Y-%m-%d %H:%M}, store {url.split(':')[0]})")
                    _stages(ctx, result.figures, phase)
                    if not skip_reference and phase != "next school day":
                        _check(result, phase, ctx, la, as_of.date(), timed=phase == "full recompute")
        finally:
            for ctx in contexts:
                if "store" in ctx.__dict__:
                    ctx.store.dispose()
    return result


# --- the report --------------------------------------------------------------------------------

def _mib(n: int) -> str:
    return f"{n / 2 ** 20:,.0f}"


def report(result: Result, database_kind: str) -> list[str]:
    la = result.la
    ref = result.reference_seconds
    lines = [f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, "
             f"{platform.platform()}; date {dt.date.today()}",
             f"LA: {len(la.schools)} schools, {la.n_pupils:,} pupils, {len(la.days)} days "
             f"({la.days[0]} to {la.days[-1]}): {la.marks:,} marks + {la.correction_rows:,} corrections "
             f"in {la.files:,} files; store {database_kind}"]
    if result.pa_share is not None:
        lines.append(f"reference shares: persistent absence {result.pa_share:.1%}, severe {result.sa_share:.1%}")
    header = (f"{'phase':<16}{'stage':<46}{'rows':>12} {'unit':<12}{'wall s':>9}{'rows/s':>12}{'CPU s':>9}"
              f"{'peak MiB':>10}{'x ref':>8}")
    lines += ["", header, "-" * len(header)]
    if ref is not None:
        lines.append(f"{'reference':<16}{f'DuckDB read_csv + GROUP BY ({result.reference_threads} threads)':<46}"
                     f"{la.rows:>12,} {'rows':<12}{ref:>9.2f}{la.rows / ref:>12,.0f}{result.reference_cpu:>9.2f}"
                     f"{_mib(result.reference_rss):>10}{1:>8.1f}")
    phases: dict[str, list[Figure]] = {}
    for f in result.figures:
        phases.setdefault(f.phase, []).append(f)
        times = f"{f.wall / ref:>8.1f}" if ref else f"{'':>8}"
        lines.append(f"{f.phase:<16}{f.stage:<46}{f.rows:>12,} {f.unit:<12}{f.wall:>9.2f}{f.rate:>12,.0f}"
                     f"{f.cpu:>9.2f}{_mib(f.peak_rss):>10}{times}" + (f"  {f.note}" if f.note else ""))
    lines.append("")
    for phase, figures in phases.items():
        total, cpu = sum(f.wall for f in figures), sum(f.cpu for f in figures)
        core = sum(f.wall for f in figures if f.stage.split()[0] in ("land", "stage", "measures", "flags"))
        vs = (f" = {total / ref:.1f} x reference; CPU {cpu:.2f} s = {cpu / result.reference_cpu:.1f} x the "
              f"reference's" if ref else f"; CPU {cpu:.2f} s")
        lines.append(f"{phase}: {total:.2f} s in all{vs}; land + stage + measures + flags {core:.2f} s")
    staging = next((f for f in result.figures if f.phase == "full recompute" and f.stage.startswith("stage")), None)
    if ref and staging:
        lines.append(f"staging runs at 1/{(la.rows / ref) / staging.rate:.0f} of the reference's rows per second "
                     f"(1/{(la.rows / result.reference_cpu) / (staging.rows / staging.cpu):.0f} per CPU second)")
    for name, n in result.disagreeing.items():
        lines.append(f"agreement after {name}: {n} of {result.enrolments[name]:,} pupils disagree with the reference")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--schools", type=int, default=300, help="number of schools (default 300)")
    p.add_argument("--pupils", type=int, default=150_000, help="pupils across all schools (default 150,000)")
    p.add_argument("--days", type=int, default=190, help="school days in the inbox (default 190; at most 191)")
    p.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite",
                   help="the store: a SQLite file, or a fresh PostgreSQL database on 127.0.0.1:5432 (dropped after)")
    p.add_argument("--pg-admin-url", default=os.environ.get("TETHER_TEST_PG_ADMIN_URL", PG_ADMIN_URL),
                   help="where to create and drop the PostgreSQL database")
    p.add_argument("--keep", type=Path, help="generate and run in this folder (created, must be empty) and keep it")
    p.add_argument("--skip-reference", action="store_true", help="no DuckDB reference and no agreement check")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    if args.keep is not None and args.keep.exists() and any(args.keep.iterdir()):
        p.error(f"--keep {args.keep} is not empty; give a new or empty folder")
    with contextlib.ExitStack() as stack:
        root = args.keep or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tether-scale-")))
        result = run_benchmark(root, schools=args.schools, pupils=args.pupils, days=args.days,
                               database_kind=args.database, skip_reference=args.skip_reference,
                               seed=args.seed, admin_url=args.pg_admin_url)
        print("\n".join(report(result, args.database)))
    return 1 if any(result.disagreeing.values()) else 0


if __name__ == "__main__":
    # Run as a script, this folder is sys.path[0]: its connectors.py would shadow the `connectors`
    # package. Tether's packages (imported inside the functions) come from this checkout instead.
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [os.path.dirname(_here)] + [p for p in sys.path if os.path.abspath(p or ".") != _here]
    sys.exit(main())
