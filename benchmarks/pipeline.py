"""Pipeline throughput at two sizes: rows per second per stage, on SQLite (or TETHER_DATABASE_URL).

For the staging stage the baseline is pandas.read_csv of the same files in the same run (the
floor of merely parsing them): the ratio says what validation, pseudonymisation and the store
cost on top of reading. Usage: python benchmarks/pipeline.py [--sizes 1500,6000] [--schools 12]
"""
from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

# Run as a script, this folder is sys.path[0]: its connectors.py would shadow the `connectors` package.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def run_size(n_pupils: int, n_schools: int, root: Path, as_of: str) -> list[dict]:
    from connectors.store_setup import init_store
    from orchestration import stages
    from orchestration.cli import demo_environment
    from orchestration.resources import TetherContext, parse_as_of
    from schemas import tables as t
    from synthetic.generate import generate_la

    root.mkdir(parents=True, exist_ok=True)
    generate_la(root / "la", seed=3, n_schools=n_schools, n_pupils=n_pupils, as_of=parse_as_of(as_of))
    env = demo_environment(root, as_of)
    if not os.environ.get("TETHER_BENCH_DATABASE_URL"):
        env["TETHER_DATABASE_URL"] = f"sqlite:///{root / 'bench.sqlite'}"
    else:
        env["TETHER_DATABASE_URL"] = os.environ["TETHER_BENCH_DATABASE_URL"]
    os.environ.update(env)
    init_store(env["TETHER_DATABASE_URL"])[0].dispose()
    ctx = TetherContext(env["TETHER_DATABASE_URL"], env["TETHER_CONFIG_DIR"], env["TETHER_DATA_DIR"], as_of)
    rows = []

    # baseline: parse every inbox file with pandas alone
    files = sorted((root / "la" / "inbox").rglob("*.csv"))
    def parse_all():
        n = 0
        for f in files:
            enc = "utf-8-sig" if "mis_b" in str(f) or "social" in str(f) or "camhs" in str(f) else "cp1252"
            n += len(pd.read_csv(io.BytesIO(f.read_bytes()), dtype=str, encoding=enc, keep_default_na=False))
        return n
    n_rows, secs = _timed(parse_all)
    rows.append({"size": n_pupils, "stage": "baseline: pandas.read_csv", "rows": n_rows, "seconds": secs})

    landed_secs = staged_secs = 0.0
    staged_rows = 0
    for source in ctx.config.sources.values():
        _, s = _timed(lambda: stages.land_source(ctx, source))
        landed_secs += s
        out, s = _timed(lambda: stages.stage_source(ctx, source))
        staged_secs += s
        staged_rows += out.get("rows_read", 0)
    rows.append({"size": n_pupils, "stage": "landing (encrypt, checksum, manifest)", "rows": staged_rows, "seconds": landed_secs})
    rows.append({"size": n_pupils, "stage": "staging (read, validate, pseudonymise, store)", "rows": staged_rows, "seconds": staged_secs})
    marks = len(ctx.store.read(t.staged_marks, columns=["laestab"]))
    for name, fn in [("link", stages.link), ("record", stages.build_record), ("measures", stages.compute_measures),
                     ("cohorts", stages.compute_cohorts), ("flags", stages.raise_flags),
                     ("deliveries", stages.queue_deliveries)]:
        _, s = _timed(lambda: fn(ctx))
        rows.append({"size": n_pupils, "stage": name, "rows": marks if name == "measures" else n_pupils, "seconds": s})
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sizes", default="1500,6000")
    p.add_argument("--schools", type=int, default=12)
    p.add_argument("--as-of", default="2026-11-30T09:45")
    args = p.parse_args()
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}")
    print(f"date: {dt.date.today()}")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in [int(s) for s in args.sizes.split(",")]:
            print(f"size {size} pupils ...", file=sys.stderr, flush=True)
            results += run_size(size, args.schools, Path(tmp) / f"p{size}", args.as_of)
    print(f"{'pupils':>7}  {'stage':<48}{'rows':>10}{'seconds':>10}{'rows/s':>12}")
    baseline = {}
    for r in results:
        rate = r["rows"] / r["seconds"] if r["seconds"] else float("inf")
        if r["stage"].startswith("baseline"):
            baseline[r["size"]] = rate
        print(f"{r['size']:>7}  {r['stage']:<48}{r['rows']:>10}{r['seconds']:>10.2f}{rate:>12,.0f}")
    for r in results:
        if r["stage"].startswith("staging"):
            rate = r["rows"] / r["seconds"]
            print(f"ratio at {r['size']} pupils: staging runs at 1/{baseline[r['size']] / rate:.1f} of plain CSV parsing speed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
