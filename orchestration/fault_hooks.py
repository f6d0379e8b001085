"""A hook for the fault suite (tests/integration/test_faults.py): end the process abruptly at a
stage boundary, as a power cut or `kill -9` would, to prove a rerun converges.

Set TETHER_TEST_CRASH_AFTER to a stage (`land`, `stage`, `link`, `record`, `measures`,
`cohorts`, `flags`, `deliveries`) or to `stage:<source>`; the process exits with status 75 right
after that stage has committed, before Dagster records it. Never set in a deployment.
"""
from __future__ import annotations

import os
import sys

CRASH_ENV = "TETHER_TEST_CRASH_AFTER"
CRASH_STATUS = 75


def crash_point(name: str) -> None:
    """Exit at once (no cleanup, no flush of anything but stderr) if the suite asked to crash here."""
    wanted = os.environ.get(CRASH_ENV)
    if wanted and (wanted == name or wanted == name.split(":")[0]):
        print(f"fault suite: crashing after {name}", file=sys.stderr, flush=True)
        os._exit(CRASH_STATUS)
