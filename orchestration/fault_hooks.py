"""Hooks for the fault and concurrency suites (tests/integration/test_faults.py, test_concurrency.py).
Never set in a deployment.

TETHER_TEST_CRASH_AFTER=<stage> (`land`, `stage`, `link`, `record`, `measures`, `cohorts`,
`flags`, `deliveries`, or `stage:<source>`): the process exits with status 75 right after that
stage has committed, before Dagster records it — as a power cut or `kill -9` would.

TETHER_TEST_HOLD_IN=<stage> with TETHER_TEST_HOLD_UNTIL=<file>: the stage, having done its work,
keeps its lock until that file exists (at most 300 s), so a second run is certain to meet it.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

CRASH_ENV = "TETHER_TEST_CRASH_AFTER"
CRASH_STATUS = 75
HOLD_ENV, HOLD_UNTIL_ENV = "TETHER_TEST_HOLD_IN", "TETHER_TEST_HOLD_UNTIL"
HOLD_LIMIT = 300.0


def _named(variable: str, name: str) -> bool:
    wanted = os.environ.get(variable)
    return bool(wanted) and (wanted == name or wanted == name.split(":")[0])


def crash_point(name: str) -> None:
    """Exit at once (no cleanup, no flush of anything but stderr) if the suite asked to crash here."""
    if _named(CRASH_ENV, name):
        print(f"fault suite: crashing after {name}", file=sys.stderr, flush=True)
        os._exit(CRASH_STATUS)


def hold_point(name: str) -> None:
    """Keep the stage (and its lock) until the suite's release file exists, if it asked to."""
    if not _named(HOLD_ENV, name):
        return
    release = Path(os.environ[HOLD_UNTIL_ENV])
    print(f"fault suite: holding {name} until {release} exists", file=sys.stderr, flush=True)
    deadline = time.monotonic() + HOLD_LIMIT
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
