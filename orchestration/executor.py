"""How the steps of a launched run share the machine: `TETHER_MAX_CONCURRENT_STEPS`.

A run launched by the daemon or the Dagster UI (a sensor's ingest run, the nightly refresh, one run
per school partition) runs its steps with Dagster's multiprocess executor: each step in a process
of its own, so that independent steps (one source's landing beside another's, the measures beside
the record) run at once, at most `TETHER_MAX_CONCURRENT_STEPS` at a time (default: the machine's
CPU count, as Dagster does). Step processes are forked from a server that has loaded Tether's
definitions once per run (`forkserver`), not started afresh: that halves a small LA's ingest run.

`TETHER_MAX_CONCURRENT_STEPS=1` runs the steps one after another in the run's own process, with
no start-up per step. That is the faster choice where a step's work is short beside the start-up
of a step process (a small LA), and where parallelism comes from several runs at once — school
partitions, each its own run, bounded by the run coordinator's `max_concurrent_runs` in
dagster.yaml — rather than from steps within one run. `tether run` always executes in one process
and is not affected.

The value is read when the definitions load (the code server and each run worker), so a change
takes effect from the next run.
"""
from __future__ import annotations

import os

import dagster as dg

from schemas.config import ConfigError

MAX_CONCURRENT_ENV = "TETHER_MAX_CONCURRENT_STEPS"


def max_concurrent_steps(environ=os.environ) -> int | None:
    """`TETHER_MAX_CONCURRENT_STEPS` as a positive whole number; None (the CPU count) when unset."""
    raw = (environ.get(MAX_CONCURRENT_ENV) or "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"{MAX_CONCURRENT_ENV} must be a whole number of steps, 1 or more, not {raw!r}; "
                          f"unset it to use the machine's CPU count")
    return int(raw)


def step_executor(environ=os.environ) -> dg.ExecutorDefinition:
    """Steps in parallel processes, at most `TETHER_MAX_CONCURRENT_STEPS` at once; in the run's
    own process, one after another, when that is 1."""
    limit = max_concurrent_steps(environ)
    if limit == 1:
        return dg.in_process_executor
    return dg.multiprocess_executor.configured({"max_concurrent": limit, "start_method": {"forkserver": {}}})
