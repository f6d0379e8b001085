"""What SQLite `synchronous = FULL` costs the pipeline against `NORMAL`, measured in one run.

FULL (the store's setting) syncs the write-ahead log at every commit, so a power cut never loses
a committed audit entry or outbox row; NORMAL syncs only at checkpoints and may lose the last
commits. The cost is one fsync per commit: this script counts the pipeline's commits and times
the whole pipeline (every stage, without Dagster, on a fresh SQLite store) under each setting,
alternating them so the machine's noise falls on both. Usage:
python benchmarks/sqlite_durability.py [--pupils 1500] [--schools 6] [--rounds 2]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this folder is sys.path[0]: its connectors.py would shadow the `connectors` package.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

AS_OF = "2026-11-30T09:45"


def _pipeline(root: Path, la: Path, synchronous: str) -> tuple[float, int]:
    """Seconds for every stage on a fresh store under `synchronous`, and the number of commits."""
    from sqlalchemy import event

    import connectors.store as store_module
    from orchestration import stages
    from orchestration.resources import TetherContext
    from sharing.keys import write_new_keys

    commits = 0
    configured = store_module._sqlite_on_connect

    def on_connect(dbapi_conn, record):
        configured(dbapi_conn, record)
        cursor = dbapi_conn.cursor()
        cursor.execute({"FULL": "PRAGMA synchronous = FULL", "NORMAL": "PRAGMA synchronous = NORMAL"}[synchronous])
        cursor.close()

    os.environ.update(write_new_keys(root / "keys"))
    store_module._sqlite_on_connect = on_connect
    try:
        ctx = TetherContext(f"sqlite:///{root / 'tether.sqlite'}", str(la / "config"), str(root / "data"), AS_OF)

        def count(_conn):
            nonlocal commits
            commits += 1
        event.listen(ctx.store.engine, "commit", count)
        t0 = time.perf_counter()
        for source in ctx.config.sources.values():
            stages.land_source(ctx, source)
            stages.stage_source(ctx, source)
        for stage in (stages.link, stages.build_record, stages.compute_measures, stages.compute_cohorts,
                      stages.raise_flags, stages.queue_deliveries):
            stage(ctx)
        seconds = time.perf_counter() - t0
        ctx.store.dispose()
    finally:
        store_module._sqlite_on_connect = configured
    return seconds, commits


def main() -> int:
    from orchestration.resources import parse_as_of
    from synthetic.generate import generate_la

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pupils", type=int, default=1500)
    p.add_argument("--schools", type=int, default=6)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}, "
          f"Python {platform.python_version()}")
    with tempfile.TemporaryDirectory(prefix="tether-durability-") as tmp:
        la = Path(tmp) / "la"
        generate_la(la, seed=3, n_schools=args.schools, n_pupils=args.pupils, as_of=parse_as_of(AS_OF))
        times: dict[str, list[float]] = {"NORMAL": [], "FULL": []}
        commits = 0
        for round_ in range(args.rounds):
            for mode in ("NORMAL", "FULL") if round_ % 2 == 0 else ("FULL", "NORMAL"):
                seconds, commits = _pipeline(Path(tmp) / f"{mode}-{round_}", la, mode)
                times[mode].append(seconds)
                print(f"  round {round_ + 1}: synchronous={mode}: {seconds:.1f} s, {commits} commits", flush=True)
    normal, full = min(times["NORMAL"]), min(times["FULL"])
    print(f"{args.pupils} pupils, {commits} commits: NORMAL {normal:.1f} s, FULL {full:.1f} s (best of "
          f"{args.rounds}); FULL/NORMAL = {full / normal:.3f}; {(full - normal) / commits * 1000:.2f} ms per commit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
