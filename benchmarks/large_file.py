"""One large attendance file through ingest: time and peak memory, column reader against row reader.

A school's year in one file (layout A, default 3.55 million rows, about 200 MB) is read,
validated and pseudonymised by `transforms.ingest.ingest_file` (no store), once with plain files
read column by column and once row by row (the baseline, in the same run, each in a process of its
own so that peak memory is its own). Usage: python benchmarks/large_file.py [--rows 3550000]
"""
from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import os
import platform
import resource
import sys
import time

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

HEADER = b"Adno,UPN,Legal Surname,Legal Forename,DOB,Gender,Reg Group,Date,Session,Mark,Minutes Late\r\n"
CODES = np.array(["/", "\\", "/", "\\", "/", "\\", "N", "I", "M", "L", "O", "C"])


def school_year_file(rows: int, seed: int = 1) -> bytes:
    """`rows` marks of one school: pupils x school days x two sessions (numpy-built lines)."""
    rng = np.random.default_rng(seed)
    days = 190
    pupils = max(1, rows // (days * 2))
    rows = pupils * days * 2
    start = dt.date(2025, 9, 1)
    school_days, day = [], start
    while len(school_days) < days:
        if day.weekday() < 5:
            school_days.append(day.strftime("%d/%m/%Y"))
        day += dt.timedelta(days=1)
    p = np.repeat(np.arange(pupils), days * 2)[:rows]
    d = np.tile(np.repeat(np.arange(days), 2), pupils)[:rows]
    s = np.tile(np.array(["AM", "PM"]), pupils * days)[:rows]
    ids = np.char.mod("%d", 100000 + p)
    lines = np.char.add(np.char.add(ids, ",,Surname"), ids)
    lines = np.char.add(np.char.add(lines, ",Forename,01/02/2014,F,6A,"), np.array(school_days)[d])
    lines = np.char.add(np.char.add(np.char.add(lines, ","), s), ",")
    lines = np.char.add(np.char.add(lines, CODES[rng.integers(0, len(CODES), rows)]), ",")
    return HEADER + b"\r\n".join(line.encode("ascii") for line in lines.tolist()) + b"\r\n"


def _run(data: bytes, by_columns: bool, out) -> None:
    from schemas.config import load_config
    from sharing.keys import KeyRing
    from transforms import ingest, read

    if not by_columns:
        original = read.read_layout
        read_by_rows = lambda *a, **k: original(*a, **{**k, "by_columns": False})  # noqa: E731
        ingest.read_layout = read_by_rows
    config = load_config(None)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    result = ingest.ingest_file(data, file_name="8864001_attendance_20260717.csv", source_id="s", file_id="f" * 64,
                                layout=config.layout("mis-a"), codes=config.codes,
                                keys=KeyRing(token_key=b"t" * 32, identity_key=b"i" * 32),
                                received_at=dt.datetime.now(dt.timezone.utc))
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out.send((result.rows_read, len(result.staged), seconds, before / 1024, peak / 1024))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rows", type=int, default=3_550_000)
    args = p.parse_args()
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"date {dt.date.today()}", flush=True)
    data = school_year_file(args.rows)
    print(f"file: {len(data) / 1e6:.0f} MB")
    context = multiprocessing.get_context("fork")
    for label, by_columns in (("column reader", True), ("row reader (baseline)", False)):
        receive, send = context.Pipe(duplex=False)
        worker = context.Process(target=_run, args=(data, by_columns, send))
        worker.start()
        rows, staged, seconds, before, peak = receive.recv()
        worker.join()
        print(f"{label:<24} {rows:>10,} rows {staged:>10,} staged {seconds:8.1f} s {rows / seconds:>10,.0f} rows/s "
              f"peak RSS {peak:,.0f} MiB ({peak - before:,.0f} MiB above the file held in memory)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
