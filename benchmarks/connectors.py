"""Connector throughput against the standard tools, measured in the same run on the same data.

SFTP: a term of nightly attendance files (the synthetic LA's inbox/school_mis_a) is uploaded into a
fresh folder on the test SFTP server; then `connectors.sftp.poll_endpoint` (completeness "rename",
delivering into memory) and the OpenSSH `sftp` client (batch `get *` into a tmpfs folder) each fetch
every file. ODBC: a throwaway database gets a hosted-MIS marks table of generated rows; then
`connectors.odbc.pull(source, "marks", since=None)` (every extract consumed) and
`psql -c "\\copy (<the same SELECT>) to stdout" > /dev/null` each read every row.

Each measurement runs once untimed (warm-up, checks), then `--repeats` times alternating Tether and
the baseline; the median is reported, with the ratio Tether / baseline (1.0 = as fast). Everything
talks only to loopback services from infra/services.env; the remote folder and the database are
removed afterwards. Progress goes to stderr, the figures to stdout.

Usage: source infra/services.env && .venv/bin/python benchmarks/connectors.py
       [--schools 12] [--pupils 6000] [--odbc-rows 500000] [--repeats 3] [--only sftp|odbc]
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from zoneinfo import ZoneInfo

# Run as a script, this file's folder is sys.path[0] and its name would shadow the `connectors` package.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

LONDON = ZoneInfo("Europe/London")
AS_OF = dt.datetime(2026, 11, 30, 9, 45, tzinfo=LONDON)
SFTP_VARS = ("TETHER_TEST_SFTP_HOST", "TETHER_TEST_SFTP_PORT", "TETHER_TEST_SFTP_USER",
             "TETHER_TEST_SFTP_KEY_FILE", "TETHER_TEST_SFTP_KNOWN_HOSTS")
ODBC_VAR = "TETHER_TEST_ODBC_CONNECTION"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def require(*names: str) -> dict[str, str]:
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        sys.exit(f"{', '.join(missing)} not set: run infra/services.sh, then `source infra/services.env`")
    return {n: os.environ[n] for n in names}


def machine() -> list[str]:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    return [f"machine: {os.cpu_count()} cores, {model}, {platform.machine()}, {platform.platform()}",
            f"python:  {platform.python_version()} ({sys.executable})",
            f"date:    {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, load average {load}"]


@dataclasses.dataclass
class Measure:
    """One side of one comparison: what it moved and its timed runs."""

    name: str
    unit: str                       # "MB" or "rows"
    amount: float
    seconds: list[float] = dataclasses.field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def rate(self) -> float:
        return self.amount / self.median if self.median else float("inf")


def alternate(repeats: int, tether, baseline, a: Measure, b: Measure) -> None:
    for i in range(repeats):
        for fn, m in ((tether, a), (baseline, b)):
            t0 = time.perf_counter()
            fn()
            m.seconds.append(time.perf_counter() - t0)
            say(f"  run {i + 1}/{repeats} {m.name}: {m.seconds[-1]:.2f}s")


# --- SFTP ---------------------------------------------------------------------------------------

def openssh_command(env: dict[str, str], batch: Path, verbose: bool = False) -> list[str]:
    return ["sftp", "-F", "/dev/null", "-b", str(batch), "-i", env["TETHER_TEST_SFTP_KEY_FILE"],
            "-P", env["TETHER_TEST_SFTP_PORT"],
            "-o", f"UserKnownHostsFile={env['TETHER_TEST_SFTP_KNOWN_HOSTS']}", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
            *(["-v"] if verbose else []),
            f"{env['TETHER_TEST_SFTP_USER']}@{env['TETHER_TEST_SFTP_HOST']}"]


def run_batch(env: dict[str, str], work: Path, lines: list[str], verbose: bool = False) -> str:
    batch = work / f"batch-{uuid.uuid4().hex[:6]}.txt"
    batch.write_text("\n".join(lines) + "\n")
    done = subprocess.run(openssh_command(env, batch, verbose), stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"sftp batch failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return done.stderr


def paramiko_cipher(env: dict[str, str]) -> str:
    """The cipher and MAC paramiko negotiates with this server (the connector's own settings)."""
    import paramiko
    client = paramiko.SSHClient()
    client.load_host_keys(env["TETHER_TEST_SFTP_KNOWN_HOSTS"])
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(env["TETHER_TEST_SFTP_HOST"], port=int(env["TETHER_TEST_SFTP_PORT"]),
                       username=env["TETHER_TEST_SFTP_USER"], key_filename=env["TETHER_TEST_SFTP_KEY_FILE"],
                       allow_agent=False, look_for_keys=False, timeout=15)
        t = client.get_transport()
        return f"{t.remote_cipher} / {t.remote_mac}"
    finally:
        client.close()


def bench_sftp(args, env: dict[str, str], work: Path) -> tuple[Measure, Measure, dict]:
    from connectors.sftp import SftpEndpoint, poll_endpoint
    from synthetic.generate import generate_la

    if env["TETHER_TEST_SFTP_HOST"] not in LOOPBACK:
        sys.exit(f"TETHER_TEST_SFTP_HOST is {env['TETHER_TEST_SFTP_HOST']}, not loopback: refusing")
    say(f"SFTP: generating a synthetic LA ({args.schools} schools, {args.pupils} pupils)")
    generate_la(work / "la", seed=3, n_schools=args.schools, n_pupils=args.pupils, as_of=AS_OF)
    src = work / "la" / "inbox" / "school_mis_a"
    files = sorted(p for p in src.iterdir() if p.is_file())
    total = sum(p.stat().st_size for p in files)
    expected = {p.name: p.read_bytes() for p in files}
    attendance = sum(1 for p in files if "_attendance_" in p.name)
    info = {"files": len(files), "attendance_files": attendance, "bytes": total}
    mb = total / 1e6
    folder = f"/inbox/bench-connectors-{uuid.uuid4().hex[:10]}"
    say(f"SFTP: uploading {len(files)} files ({mb:.1f} MB) to {folder} with OpenSSH sftp")
    run_batch(env, work, [f"mkdir {folder}", f"cd {folder}", f"lcd {src}", "put *"])

    endpoint = SftpEndpoint(
        source_id="bench", host=env["TETHER_TEST_SFTP_HOST"], port=int(env["TETHER_TEST_SFTP_PORT"]),
        username=env["TETHER_TEST_SFTP_USER"], key_file=env["TETHER_TEST_SFTP_KEY_FILE"],
        known_hosts_file=env["TETHER_TEST_SFTP_KNOWN_HOSTS"], remote_dir=folder, patterns=("*",),
        completeness="rename", after_success="leave", max_retries=0)
    shm = Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else work
    info["openssh_target"] = "tmpfs (/dev/shm)" if shm != work else str(work)

    def tether() -> None:
        got: dict[str, bytes] = {}

        def deliver(name: str, data: bytes) -> bool:
            got[name] = data
            return True
        result = poll_endpoint(endpoint, deliver=deliver, state={})
        if result.errors or len(got) != len(files):
            raise RuntimeError(f"Tether fetched {len(got)} of {len(files)} files; errors: {result.errors[:3]}")
        if got != expected:
            raise RuntimeError("Tether's bytes differ from the uploaded files")

    def openssh(verbose: bool = False, check: bool = False) -> str:
        dest = Path(tempfile.mkdtemp(prefix="tether-bench-", dir=shm))
        try:
            log = run_batch(env, work, [f"cd {folder}", f"lcd {dest}", "get *"], verbose)
            fetched = list(dest.iterdir())
            if len(fetched) != len(files):
                raise RuntimeError(f"OpenSSH fetched {len(fetched)} of {len(files)} files")
            if check and {p.name: p.read_bytes() for p in fetched} != expected:
                raise RuntimeError("OpenSSH's bytes differ from the uploaded files")
            return log
        finally:
            shutil.rmtree(dest, ignore_errors=True)

    a = Measure("Tether poll_endpoint", "MB", mb)
    b = Measure("OpenSSH sftp get", "MB", mb)
    try:
        say("SFTP: warm-up (untimed) and checks")
        tether()
        verbose_log = openssh(verbose=True, check=True)
        found = re.search(r"kex: server->client cipher: (\S+) MAC: (\S+)", verbose_log)
        info["openssh_cipher"] = f"{found.group(1)} / {found.group(2)}" if found else "unknown"
        info["paramiko_cipher"] = paramiko_cipher(env)
        say(f"SFTP: {args.repeats} alternating runs")
        alternate(args.repeats, tether, openssh, a, b)
    finally:
        say(f"SFTP: removing {folder}")
        try:
            run_batch(env, work, [f"-rm {folder}/*", f"-rmdir {folder}"])
        except (RuntimeError, subprocess.SubprocessError) as exc:
            say(f"SFTP: cleanup of {folder} failed: {exc}")
    return a, b, info


# --- ODBC ---------------------------------------------------------------------------------------

def _part(conn: str, key: str) -> str:
    match = re.search(rf"(?i)(?:^|;){key}=([^;]*)", conn)
    return match.group(1).strip() if match else ""


MARKS_TABLE = """
CREATE TABLE mis_marks (
    laestab char(7) NOT NULL, pupil_id text NOT NULL, session_date date NOT NULL, session varchar(2) NOT NULL,
    mark varchar(2) NOT NULL, minutes_late integer, last_modified timestamptz NOT NULL,
    PRIMARY KEY (laestab, pupil_id, session_date, session));
"""
# Row i: school i % 12; then pupil, school day (weekdays from Monday 7 Sept) and session. A class of 30
# pupils shares one register-saved time, as in infra/seed_mis.py; ~4% N, ~3% late, ~2% corrected.
FILL = """
INSERT INTO mis_marks
SELECT lpad((8869001 + i %% 12)::text, 7, '0'),
       (100000 + (i / 12) / 120)::text,
       day,
       CASE WHEN (i / 12) %% 2 = 0 THEN 'AM' ELSE 'PM' END,
       CASE WHEN h < 4 THEN 'N' WHEN h < 7 THEN 'L' WHEN h < 9 THEN 'I'
            WHEN (i / 12) %% 2 = 0 THEN '/' ELSE '\\' END,
       CASE WHEN h >= 4 AND h < 7 THEN h * 3 END,
       (day + CASE WHEN (i / 12) %% 2 = 0 THEN time '08:40' ELSE time '13:15' END
            + make_interval(mins => ((i / 12) / 120 / 30) %% 17)
            + CASE WHEN h >= 7 AND h < 9 THEN interval '1 day 90 minutes' ELSE interval '0' END)
           AT TIME ZONE 'Europe/London'
FROM (SELECT i, (i * 2654435761) %% 100 AS h,
             date '2026-09-07' + (((i / 12) %% 120) / 2 / 5) * 7 + ((i / 12) %% 120) / 2 %% 5 AS day
      FROM generate_series(0, %(rows)s - 1) AS i) AS g;
CREATE INDEX mis_marks_last_modified ON mis_marks (last_modified);
ANALYZE mis_marks;
"""


def bench_odbc(args) -> tuple[Measure, Measure, dict]:
    import psycopg2
    from psycopg2 import sql as pgsql

    from connectors.odbc import OdbcSource, pull, select_statement

    conn_str = require(ODBC_VAR)[ODBC_VAR]
    host, port, user = _part(conn_str, "Server"), _part(conn_str, "Port") or "5432", _part(conn_str, "Uid")
    if host not in LOOPBACK:
        sys.exit(f"{ODBC_VAR} names server {host!r}, not loopback: refusing")
    name = f"tether_bench_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(host=host, port=port, user=user, dbname="postgres")
    admin.autocommit = True
    info: dict = {"database": name, "driver": _part(conn_str, "Driver"),
                  "fetch": _part(conn_str, "Fetch") or "driver default"}
    try:
        with admin.cursor() as cur:
            cur.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(name)))           # generated name, not input
        say(f"ODBC: filling {name}.mis_marks with {args.odbc_rows:,} generated rows")
        with psycopg2.connect(host=host, port=port, user=user, dbname=name) as db, db.cursor() as cur:
            cur.execute(MARKS_TABLE)
            cur.execute(FILL, {"rows": args.odbc_rows})
        db.close()
        odbc = re.sub(r"(?i)Database=[^;]*", f"Database={name}", conn_str)
        source = OdbcSource.from_source_options(
            "bench_mis", {"connection_env": "BENCH_ODBC", "school_column": "laestab", "timezone": "Europe/London",
                          "relations": {"pupils": {"table": "mis_pupils"}, "marks": {"table": "mis_marks"}}},
            {"BENCH_ODBC": odbc})
        sql, _, _ = select_statement(source, "marks", incremental=False)
        info["chunk_rows"] = source.chunk_rows
        info["sql"] = sql
        psql = ["psql", "-X", "-q", "-h", host, "-p", port, "-U", user, "-d", name, "-w",
                "-v", "ON_ERROR_STOP=1", "-c", f"\\copy ({sql}) to stdout"]
        counted = {}

        def tether() -> None:
            rows = extracts = size = 0
            for extract in pull(source, "marks", since=None, now=AS_OF.replace(tzinfo=None)):
                rows += extract.rows
                extracts += 1
                size += len(extract.data)
            if rows != args.odbc_rows:
                raise RuntimeError(f"Tether pulled {rows} of {args.odbc_rows} rows")
            counted.update(extracts=extracts, csv_bytes=size)

        def baseline(out=subprocess.DEVNULL) -> subprocess.CompletedProcess:
            done = subprocess.run(psql, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.PIPE, timeout=600)
            if done.returncode != 0:
                raise RuntimeError(f"psql failed ({done.returncode}): {done.stderr.decode()[-500:]}")
            return done

        say("ODBC: warm-up (untimed) and checks")
        tether()
        lines = baseline(subprocess.PIPE).stdout.count(b"\n")
        if lines != args.odbc_rows:
            raise RuntimeError(f"psql \\copy wrote {lines} of {args.odbc_rows} rows")
        info.update(counted)
        a = Measure("Tether odbc.pull", "rows", args.odbc_rows)
        b = Measure("psql \\copy to stdout", "rows", args.odbc_rows)
        say(f"ODBC: {args.repeats} alternating runs")
        alternate(args.repeats, tether, baseline, a, b)
        return a, b, info
    finally:
        say(f"ODBC: dropping {name}")
        with admin.cursor() as cur:
            cur.execute(pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(name)))
        admin.close()


# --- report -------------------------------------------------------------------------------------

def table(title: str, a: Measure, b: Measure, files: int | None = None) -> list[str]:
    """The two sides of one comparison as fixed-width rows, then the ratio."""
    mb = a.unit == "MB"
    head = f"  {'':<24}" + (f"{'files':>7}{'MB':>8}" if mb else f"{'rows':>10}")
    out = [title, head + f"{'median s':>10}{'MB/s' if mb else 'rows/s':>10}   runs (s)"]
    for m in (a, b):
        size = f"{files:>7,}{m.amount:>8.1f}" if mb else f"{m.amount:>10,.0f}"
        rate = f"{m.rate:>10.1f}" if mb else f"{m.rate:>10,.0f}"
        out.append(f"  {m.name:<24}{size}{m.median:>10.2f}{rate}   {', '.join(f'{x:.2f}' for x in m.seconds)}")
    out.append(f"  ratio Tether/baseline throughput: {a.rate / b.rate:.2f} "
               f"(Tether takes {a.median / b.median:.1f}x the baseline's time)")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--schools", type=int, default=12)
    p.add_argument("--pupils", type=int, default=6000)
    p.add_argument("--odbc-rows", type=int, default=500_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--only", choices=("sftp", "odbc"))
    args = p.parse_args(argv)
    if args.repeats < 1 or args.odbc_rows < 1:
        p.error("--repeats and --odbc-rows must be at least 1")
    for tool in ("sftp", "psql"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found on PATH (infra/services.sh installs it)")
    lines = machine()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tether-bench-connectors-") as tmp:
        if args.only in (None, "sftp"):
            env = require(*SFTP_VARS)
            a, b, info = bench_sftp(args, env, Path(tmp))
            lines += ["", *table(f"SFTP: a term of school MIS files ({args.schools} schools, {args.pupils} pupils; "
                                 f"median of {args.repeats}, alternating)", a, b, info["files"]),
                      f"  {info['files']} files ({info['attendance_files']} nightly attendance), "
                      f"{info['bytes'] / info['files'] / 1e3:.0f} kB mean; ciphers: paramiko "
                      f"{info['paramiko_cipher']}, OpenSSH {info['openssh_cipher']}; OpenSSH writes to "
                      f"{info['openssh_target']}, Tether delivers into memory"]
        if args.only in (None, "odbc"):
            a, b, info = bench_odbc(args)
            lines += ["", *table(f"ODBC: marks relation, full pull ({args.odbc_rows:,} rows; median of "
                                 f"{args.repeats}, alternating)", a, b),
                      f"  Tether: {info['driver']} via pyodbc, Fetch={info['fetch']}, chunk_rows "
                      f"{info['chunk_rows']}, {info['extracts']} CSV extracts ({info['csv_bytes'] / 1e6:.1f} MB); "
                      f"both run: {info['sql']}"]
    lines += ["", f"total wall time {time.perf_counter() - started:.0f}s"]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
