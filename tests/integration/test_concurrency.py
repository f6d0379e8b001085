"""Two Tether runs at once on one PostgreSQL store: they serialise stage by stage (one waits for
the other), and the store afterwards has no duplicates and equals one undisturbed run's.

Without the locks the second run failed with a unique violation on child_record (two
delete-then-insert rebuilds interleaved) and left data-quality issues recorded twice (two
read-then-insert appends interleaved): the first tests below reproduce exactly those
interleavings, deterministically, by holding the first transaction open until the second is
seen waiting.
"""
from __future__ import annotations

import datetime as dt
import threading
import time

import pandas as pd
import pytest
from sqlalchemy import text

from connectors import store as store_module
from connectors.landing import Landing
from connectors.store import Store, StoreBusyError
from orchestration.fault_hooks import HOLD_ENV, HOLD_UNTIL_ENV
from schemas import tables as t
from tests.conftest import create_pg_database, drop_pg_database
from tests.integration.faultkit import (  # noqa: F401  (fixtures)
    RUN_TIMEOUT, deployment, small_la, start_process, undisturbed,
)
from tests.integration.snapshot import differences, snapshot

pytestmark = pytest.mark.integration
NOW = dt.datetime(2026, 9, 17, 8, 0, tzinfo=dt.timezone.utc)
SETTLE = 60      # seconds a test waits for the other connection to reach its lock before failing


@pytest.fixture
def two_stores():
    """Two stores on one fresh PostgreSQL database: two runs' connection pools."""
    url = create_pg_database()
    first, second = Store(url), Store(url)
    first.migrate()
    yield first, second
    first.dispose()
    second.dispose()
    drop_pg_database(url)


def _wait_until(condition, what: str, limit: float = SETTLE) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {limit} s waiting until {what}")
        time.sleep(0.02)


def _someone_waits_for_a_lock(store: Store) -> bool:
    with store.engine.connect() as conn:
        return bool(conn.execute(text(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE NOT l.granted AND a.datname = current_database()")).scalar())


def _in_thread(fn) -> tuple[threading.Thread, list]:
    outcome: list = []

    def run():
        try:
            outcome.append(("ok", fn()))
        except BaseException as exc:       # handed back to the test, which asserts on it
            outcome.append(("error", exc))
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _record(keys: list[str], as_of: dt.datetime) -> pd.DataFrame:
    return pd.DataFrame({"child_key": keys, "restricted": False, "in_school_feed": True, "in_social_care": False,
                         "in_health": False, "camhs_open": False, "as_of": as_of})


def test_two_rebuilds_of_a_derived_table_at_once_serialise(two_stores):
    first, second = two_stores
    first.replace(t.child_record, _record(["a", "b"], NOW))
    with first.begin():
        first.replace(t.child_record, _record(["a", "b", "c"], NOW))
        thread, outcome = _in_thread(lambda: second.replace(t.child_record, _record(["a", "b", "c"], NOW)))
        _wait_until(lambda: _someone_waits_for_a_lock(first), "the second rebuild waits for the first")
    thread.join(SETTLE)
    assert outcome == [("ok", 3)]                  # no unique violation: it waited, then rebuilt
    assert first.read(t.child_record)["child_key"].tolist() == ["a", "b", "c"]


def test_two_runs_recording_one_files_issues_at_once_record_each_once(two_stores, tmp_path):
    first, second = two_stores
    issues = [{"row_number": n, "field": "upn", "issue": "UPN check letter is wrong"} for n in (3, 7)]
    landings = [Landing(tmp_path, store, b"k" * 32) for store in (first, second)]

    def record(landing: Landing) -> int:
        return landing.record_issues(source_id="school_mis_a", file_id="f" * 64, file_name="x.csv",
                                     issues=issues, at=NOW)
    with first.begin():
        assert record(landings[0]) == 2
        thread, outcome = _in_thread(lambda: record(landings[1]))
        _wait_until(lambda: _someone_waits_for_a_lock(first), "the second run waits for the first")
    thread.join(SETTLE)
    assert outcome == [("ok", 0)]
    assert len(first.read(t.data_quality_issues)) == 2


@pytest.fixture(params=["sqlite", "postgresql"])
def two_runs_stores(request, tmp_path):
    if request.param == "postgresql":
        url = create_pg_database()
    else:
        url = f"sqlite:///{tmp_path / 'tether.sqlite'}"
    stores = Store(url), Store(url)
    yield stores
    for store in stores:
        store.dispose()
    if request.param == "postgresql":
        drop_pg_database(url)


def test_a_run_that_cannot_wait_longer_names_the_run_holding_the_stage(two_runs_stores):
    first, second = two_runs_stores
    with first.exclusive("stage:school_mis_a", what="staging source school_mis_a"):
        with pytest.raises(StoreBusyError) as busy:
            with second.exclusive("stage:school_mis_a", what="staging source school_mis_a", wait_seconds=0.2):
                pytest.fail("two runs held one stage at once")
        with second.exclusive("stage:school_mis_b", what="staging source school_mis_b", wait_seconds=0):
            pass                                   # other stages are free
        with first.exclusive("stage:school_mis_a", what="staging source school_mis_a", wait_seconds=0):
            pass                                   # re-entrant within one run
    message = str(busy.value)
    assert "\n" not in message
    assert message.startswith("another Tether run is staging source school_mis_a (tether pid ")
    assert "try again when it finishes" in message and "TETHER_LOCK_WAIT_SECONDS" in message
    with second.exclusive("stage:school_mis_a", what="staging source school_mis_a", wait_seconds=0):
        pass                                       # free once the first run is done


def test_a_run_waits_for_the_stage_and_then_runs_it(two_runs_stores, monkeypatch):
    first, second = two_runs_stores
    waiting, order = threading.Event(), []
    real_sleep = time.sleep

    def sleep(seconds):
        waiting.set()
        real_sleep(seconds)
    monkeypatch.setattr(store_module.time, "sleep", sleep)

    def second_run():
        with second.exclusive("link", what="linking records", wait_seconds=SETTLE):
            order.append("second")
    with first.exclusive("link", what="linking records"):
        thread, outcome = _in_thread(second_run)
        assert waiting.wait(SETTLE)                 # the second run has found the stage held
        order.append("first")
    thread.join(SETTLE)
    assert outcome == [("ok", None)] and order == ["first", "second"]


def _sessions(store: Store, like: str) -> int:
    with store.engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                 "AND application_name LIKE :like"), {"like": like}).scalar()


def test_two_full_runs_at_once_on_postgresql_both_succeed_and_equal_one_undisturbed_run(
        small_la, undisturbed, tmp_path):
    """Two `tether run`s on one PostgreSQL store, the second started while the first is inside a
    stage (held there until the second is seen waiting for it): both succeed, the second having
    waited, and the store equals one undisturbed run's, with no row twice."""
    url = create_pg_database()
    release = tmp_path / "release"
    runs = []
    try:
        env = deployment(small_la, tmp_path, url)
        watcher = Store(url)
        runs.append(start_process(["-m", "orchestration.cli", "run"], {**env, "DAGSTER_HOME": str(tmp_path / "dh1")},
                                  {HOLD_ENV: "stage:school_mis_a", HOLD_UNTIL_ENV: str(release)}))
        _wait_until(lambda: _sessions(watcher, "tether pid % since %: staging source school_mis_a") == 1,
                    "the first run holds staging of school_mis_a", RUN_TIMEOUT)
        runs.append(start_process(["-m", "orchestration.cli", "run"], {**env, "DAGSTER_HOME": str(tmp_path / "dh2")}))
        _wait_until(lambda: _sessions(watcher, "tether pid % waiting: staging source school_mis_a") == 1,
                    "the second run waits for it", RUN_TIMEOUT)
        release.touch()
        results = [run.communicate(timeout=RUN_TIMEOUT) for run in runs]
        for run, (_, err) in zip(runs, results):
            assert run.returncode == 0, err[-3000:]
        got = snapshot(watcher)
        watcher.dispose()
        assert differences(got, undisturbed) == {}       # multisets: a row stored twice would show
    finally:
        release.touch()
        for run in runs:
            if run.poll() is None:
                run.kill()
                run.communicate()
        drop_pg_database(url)
