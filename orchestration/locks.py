"""One Tether run at a time per stage: concurrent runs (a sensor's ingest job and the nightly
refresh, or two operators) wait for each other instead of interleaving their writes.

Each stage holds a named lock in the store while it runs (`Store.exclusive`: a PostgreSQL
advisory lock, or a file lock beside a SQLite store). A run that finds the stage held waits up to
TETHER_LOCK_WAIT_SECONDS (default 600) and then fails with one line naming the other run.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orchestration.fault_hooks import crash_point, hold_point
from orchestration.resources import TetherContext

STAGES = ("land", "stage", "link", "record", "measures", "cohorts", "flags", "deliveries")

WHAT = {
    "land": "landing source {source}",
    "stage": "staging source {source}",
    "link": "linking records (child_links)",
    "record": "building the child record",
    "measures": "computing attendance measures",
    "cohorts": "deriving cohort membership",
    "flags": "raising today's flags",
    "deliveries": "queuing deliveries and their audit entries",
}


def lock_name(stage: str, source: str | None = None) -> str:
    """The lock a stage holds: `stage:<source>` for a source's landing or staging, else the stage."""
    if stage not in WHAT:
        raise ValueError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
    return f"{stage}:{source}" if source is not None else stage


def run_exclusively(ctx: TetherContext, stage: str, fn: Callable[..., dict], *args: Any,
                    source: str | None = None) -> dict:
    """Run one stage function while holding its lock (then the fault suite's hooks)."""
    name = lock_name(stage, source)
    with ctx.store.exclusive(name, what=WHAT[stage].format(source=source)):
        figures = fn(ctx, *args)
        hold_point(name)
    crash_point(name)
    return figures
