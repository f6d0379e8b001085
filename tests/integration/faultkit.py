"""What the fault and concurrency suites share: a small synthetic LA with its keys, deployments of
it (store, data folder, Dagster home), runs of it in processes of their own, and the store an
undisturbed run builds."""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
from zoneinfo import ZoneInfo

from connectors.store import Store
from connectors.store_setup import init_store
from orchestration.fault_hooks import CRASH_ENV
from sharing.keys import write_new_keys
from synthetic.generate import generate_la
from tests.integration.snapshot import snapshot

AS_OF = dt.datetime(2026, 9, 17, 9, 45, tzinfo=ZoneInfo("Europe/London"))   # 13 school days of files
RUN_TIMEOUT = 300       # seconds one run of the small LA may take before the test fails (not a timing test)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def small_la(tmp_path_factory) -> dict[str, str]:
    """A two-school synthetic LA with its keys: the environment every run of a module shares."""
    root = tmp_path_factory.mktemp("faults_la")
    generate_la(root / "la", seed=31, n_schools=2, n_pupils=150, as_of=AS_OF)
    return {"TETHER_CONFIG_DIR": str(root / "la" / "config"), "TETHER_AS_OF": AS_OF.isoformat(),
            **write_new_keys(root / "keys")}


def deployment(small_la: dict[str, str], where: Path, database_url: str | None = None) -> dict[str, str]:
    """The environment of one deployment of the small LA: its own store, data folder, Dagster home."""
    where.mkdir(parents=True, exist_ok=True)
    env = {**small_la, "TETHER_DATA_DIR": str(where / "data"), "DAGSTER_HOME": str(where / "dagster_home"),
           "TETHER_DATABASE_URL": database_url or f"sqlite:///{where / 'tether.sqlite'}"}
    init_store(env["TETHER_DATABASE_URL"], env["TETHER_DATA_DIR"])[0].dispose()      # as `tether init` does
    return env


def tether_run(env: dict[str, str], **extra: str) -> subprocess.CompletedProcess:
    """`tether run` (Dagster, every asset and check) in a process of its own, as cron starts it."""
    return run_process(["-m", "orchestration.cli", "run"], env, extra)


def stages_run(env: dict[str, str], **extra: str) -> subprocess.CompletedProcess:
    """Every stage in order through the assets' locks and crash points, without Dagster's start-up
    (tests/integration/fault_driver.py): the same writes, in a process that may be killed."""
    return run_process(["-m", "tests.integration.fault_driver"], env, extra)


def start_process(args: list[str], env: dict[str, str], extra: dict[str, str] | None = None) -> subprocess.Popen:
    full = {k: v for k, v in os.environ.items() if k != CRASH_ENV} | env | (extra or {})
    return subprocess.Popen([sys.executable, *args], env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=REPO)


def run_process(args: list[str], env: dict[str, str], extra: dict[str, str]) -> subprocess.CompletedProcess:
    process = start_process(args, env, extra)
    try:
        out, err = process.communicate(timeout=RUN_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def store_of(env: dict[str, str]) -> Store:
    return Store(env["TETHER_DATABASE_URL"])


@pytest.fixture(scope="module")
def undisturbed(small_la, tmp_path_factory) -> dict:
    """The store after one undisturbed `tether run`: what every disturbed run must converge to."""
    env = deployment(small_la, tmp_path_factory.mktemp("undisturbed"))
    done = tether_run(env)
    assert done.returncode == 0, done.stderr[-2000:]
    store = store_of(env)
    want = snapshot(store)
    store.dispose()
    assert sum(map(len, want.values())) > 1000 and want["outbox"] and want["audit_log"]
    return want
