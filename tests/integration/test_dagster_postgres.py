"""The production Dagster instance (infra/deploy/dagster.yaml) on PostgreSQL, driven by the real daemon.

`dagster-daemon run` is started on a Dagster home holding that very file, with run, event-log and
schedule storage in a PostgreSQL database of the test's own, against a small synthetic LA whose
one delivered source is a school's landing folder. The daemon's sensor sees the files and asks
for an ingest run; the queued-run coordinator launches it in a run worker of its own; and every
record of it — the sensor's tick, the run, its steps and materializations — is read back from
PostgreSQL through the DagsterInstance API, as a webserver on another machine would.

The run's steps run in the worker's own process (TETHER_MAX_CONCURRENT_STEPS=1): a process per
step would make this one run several minutes long on a small machine (orchestration/executor.py).
"""
from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.scheduler.instigation import InstigatorType, TickStatus
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage
from sqlalchemy.engine import make_url

from schemas import tables as t
from tests.conftest import create_pg_database, drop_pg_database
from tests.integration.faultkit import REPO, deployment, small_la, start_process, store_of  # noqa: F401

pytestmark = pytest.mark.integration

SOURCE = "school_mis_b"            # the one source with files in its folder: one sensor, one run
SETTLE = 300                       # seconds the daemon may take before the test fails (not a timing test)
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


@pytest.fixture
def dagster_pg(monkeypatch) -> dict[str, str]:
    """An empty PostgreSQL database for Dagster's storage, named to dagster.yaml by DAGSTER_PG_*."""
    url = create_pg_database()
    parts = make_url(url)
    env = {"DAGSTER_PG_HOST": parts.host, "DAGSTER_PG_PORT": str(parts.port or 5432), "DAGSTER_PG_DB": parts.database,
           "DAGSTER_PG_USERNAME": parts.username, "DAGSTER_PG_PASSWORD": parts.password or ""}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    yield env
    drop_pg_database(url)


@pytest.fixture
def one_school_deployment(small_la, tmp_path, fresh_pg_url) -> dict[str, str]:
    """The small LA with only SOURCE's landing folder delivered (the other sensors find no folder),
    its store on PostgreSQL, and a Dagster home holding the production dagster.yaml."""
    la = Path(small_la["TETHER_CONFIG_DIR"]).parent
    shutil.copytree(la / "config", tmp_path / "la" / "config")
    shutil.copytree(la / "inbox" / SOURCE, tmp_path / "la" / "inbox" / SOURCE)
    env = deployment({**small_la, "TETHER_CONFIG_DIR": str(tmp_path / "la" / "config")}, tmp_path / "site",
                     fresh_pg_url)
    home = Path(env["DAGSTER_HOME"])
    home.mkdir()
    shutil.copy(REPO / "infra" / "deploy" / "dagster.yaml", home / "dagster.yaml")
    return env


def _wait_for(find, what: str):
    deadline = time.monotonic() + SETTLE
    while time.monotonic() < deadline:
        found = find()
        if found:
            return found
        time.sleep(1)
    pytest.fail(f"the daemon did not {what} within {SETTLE} s")


def test_the_daemon_runs_a_sensors_ingest_run_with_every_record_in_postgresql(one_school_deployment, dagster_pg):
    env = {**one_school_deployment, **dagster_pg, "PYTHONPATH": str(REPO), "TETHER_MAX_CONCURRENT_STEPS": "1"}
    instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])      # creates Dagster's tables
    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
    assert instance.get_runs() == []

    daemon = start_process([str(Path(sys.executable).with_name("dagster-daemon")), "run",
                            "-m", "orchestration.definitions", "-d", str(REPO)], env)
    try:
        def finished_run():
            runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/sensor_name": f"watch_{SOURCE}"}))
            return runs[0] if runs and runs[0].status in FINISHED else None
        run = _wait_for(finished_run, f"finish a run asked for by watch_{SOURCE}")
    finally:
        daemon.terminate()
        try:
            _, daemon_err = daemon.communicate(timeout=60)
        except Exception:
            daemon.kill()
            _, daemon_err = daemon.communicate()

    events = instance.all_logs(run.run_id)
    failures = [e.dagster_event.step_key for e in events if e.is_dagster_event and e.dagster_event.is_step_failure]
    assert run.status == dg.DagsterRunStatus.SUCCESS, (failures, daemon_err[-3000:])
    assert run.job_name == f"ingest_{SOURCE}" and run.tags["tether/source"] == SOURCE
    assert instance.get_runs() == [run]                # the other sources' folders are absent: no other run

    # the sensor's tick that asked for it is in PostgreSQL, with the run it requested
    sensors = {s.instigator_name: s for s in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)}
    state = sensors[f"watch_{SOURCE}"]
    ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id)
    assert [tick.run_ids for tick in ticks if tick.status == TickStatus.SUCCESS] == [[run.run_id]]

    # every step succeeded, in the run worker the daemon started (one process: TETHER_MAX_CONCURRENT_STEPS=1)
    starts = [e for e in events if e.is_dagster_event and e.dagster_event.event_type == dg.DagsterEventType.STEP_START]
    steps = {e.dagster_event.step_key for e in starts}
    assert {f"landing__{SOURCE}", f"staged__{SOURCE}", "linked__child_links", "outbox__deliveries"} <= steps
    assert not failures
    workers = {e.dagster_event.pid for e in starts}
    assert len(workers) == 1 and daemon.pid not in workers
    for key in (["landing", SOURCE], ["staged", SOURCE], ["outbox", "deliveries"]):
        materialized = instance.get_latest_materialization_event(dg.AssetKey(key))
        assert materialized is not None and materialized.run_id == run.run_id

    # and the run did Tether's work: the school's files are landed and staged in the Tether store
    store = store_of(one_school_deployment)
    try:
        manifest = store.read(t.landing_manifest)
    finally:
        store.dispose()
    delivered = list((Path(one_school_deployment["TETHER_CONFIG_DIR"]).parent / "inbox" / SOURCE).iterdir())
    assert set(manifest["source_id"]) == {SOURCE} and 0 < len(manifest) <= len(delivered)
    assert set(manifest["status"]) == {"staged"}
