"""The fault suite: a run interrupted in any of the ways a deployment meets — the process killed
between stages, its PostgreSQL connection terminated mid-load, the SFTP server away for longer
than the retry budget — fails cleanly, loses nothing, and the next run converges to exactly the
store an undisturbed run builds (every table compared, see tests/integration/snapshot.py).

(The stalled SFTP transfer and the hung ODBC query are in the connectors' own suites.)
"""
from __future__ import annotations

import shutil
import socket
import threading
from pathlib import Path

import psycopg2
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from connectors.landing import Landing
from connectors.sftp import SftpSourceError
from connectors.store import StoreUnavailableError
from connectors.store_setup import init_store
from orchestration import stages
from orchestration.fault_hooks import CRASH_ENV, CRASH_STATUS
from orchestration.locks import STAGES, run_exclusively
from orchestration.resources import TetherContext
from schemas import tables as t
from tests.conftest import create_pg_database, drop_pg_database
from tests.integration.fault_driver import run_all_stages
from tests.integration.faultkit import (  # noqa: F401  (fixtures)
    AS_OF, deployment, small_la, stages_run, store_of, tether_run, undisturbed,
)
from tests.integration.snapshot import differences, snapshot

pytestmark = pytest.mark.integration


# --- (a) the process killed at each stage boundary ---------------------------------------------

@pytest.mark.parametrize("stage", STAGES)
def test_a_run_killed_after_each_stage_converges_on_rerun(stage, small_la, undisturbed, tmp_path):
    env = deployment(small_la, tmp_path)
    killed = stages_run(env, **{CRASH_ENV: stage})
    assert killed.returncode == CRASH_STATUS, killed.stderr[-2000:]
    assert f"fault suite: crashing after {stage}" in killed.stderr

    rerun = stages_run(env)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    store = store_of(env)
    try:
        assert differences(snapshot(store), undisturbed) == {}
    finally:
        store.dispose()


def test_a_tether_run_killed_between_stages_converges_on_rerun(small_la, undisturbed, tmp_path):
    """The crash point is wired through the Dagster assets `tether run` executes, too."""
    env = deployment(small_la, tmp_path)
    killed = tether_run(env, **{CRASH_ENV: "record"})
    assert killed.returncode == CRASH_STATUS, killed.stderr[-2000:]
    store = store_of(env)
    try:
        assert len(store.read(t.child_record)) and store.read(t.outbox).empty   # stopped before the flags
        rerun = tether_run(env)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        assert differences(snapshot(store), undisturbed) == {}
    finally:
        store.dispose()


# --- (b) PostgreSQL connections terminated mid-load ---------------------------------------------

@pytest.fixture
def pg_deployment(small_la, tmp_path, monkeypatch):
    url = create_pg_database()
    env = deployment(small_la, tmp_path, url)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    yield env
    drop_pg_database(url)


def _terminate(url: str, pid: int) -> None:
    """pg_terminate_backend from another connection, as a DBA or a failover would."""
    admin = make_url(url)
    conn = psycopg2.connect(host=admin.host, port=admin.port, user=admin.username, dbname=admin.database)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
        assert cur.fetchone()[0] is True
    conn.close()


def _context(env: dict[str, str]) -> TetherContext:
    return TetherContext(env["TETHER_DATABASE_URL"], env["TETHER_CONFIG_DIR"], env["TETHER_DATA_DIR"],
                         env["TETHER_AS_OF"])


def test_a_connection_terminated_mid_load_fails_in_one_line_and_a_rerun_converges(
        pg_deployment, undisturbed, monkeypatch):
    ctx = _context(pg_deployment)
    source = ctx.config.sources["school_mis_a"]
    run_exclusively(ctx, "land", stages.land_source, source, source=source.source_id)
    files = len(ctx.landing.pending(source.source_id))
    assert files > stages.FILES_PER_TRANSACTION + 1

    # Terminate the staging transaction's backend while it writes the second batch of files,
    # after the first batch has committed.
    original, calls = Landing.mark_staged, []

    def mark_staged_then_lose_the_connection(self, file_id, **counts):
        calls.append(file_id)
        if len(calls) == stages.FILES_PER_TRANSACTION + 2:
            conn = ctx.store._local.conn
            _terminate(pg_deployment["TETHER_DATABASE_URL"], conn.execute(select(func.pg_backend_pid())).scalar())
        return original(self, file_id, **counts)

    monkeypatch.setattr(Landing, "mark_staged", mark_staged_then_lose_the_connection)
    with pytest.raises(StoreUnavailableError) as lost:
        run_exclusively(ctx, "stage", stages.stage_source, source, source=source.source_id)
    message = str(lost.value)
    assert "\n" not in message
    assert "terminating connection" in message or "server closed the connection" in message
    assert make_url(pg_deployment["TETHER_DATABASE_URL"]).database in message and "run again" in message
    monkeypatch.setattr(Landing, "mark_staged", original)

    # The first batch is staged whole, the interrupted one not at all: nothing half-written.
    manifest = ctx.store.read(t.landing_manifest)
    staged = set(manifest.loc[manifest["status"] != "landed", "file_id"])   # staged, or refused whole
    assert len(staged) == stages.FILES_PER_TRANSACTION and len(manifest) == files
    assert set(ctx.store.read(t.staged_marks, columns=["file_id"])["file_id"]) <= staged

    run_all_stages(_context(pg_deployment))       # the next run, with a new connection
    assert differences(snapshot(ctx.store), undisturbed) == {}
    ctx.store.dispose()


# --- (c) the SFTP server away for longer than the retry budget, then back -----------------------

class SwitchableProxy:
    """A loopback TCP proxy in front of sshd: while `up` is false every connection is dropped at
    once (the server is away); while true, bytes pass both ways."""

    def __init__(self, target_port: int):
        self.target_port, self.up, self.dropped = target_port, False, 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self.up:
                self.dropped += 1
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


def test_an_sftp_server_away_past_the_retry_budget_loses_nothing_and_every_file_lands_once_when_back(
        small_la, tmp_path, monkeypatch, sftp_env, sftp_endpoint, sftp_client, known_hosts_for):
    endpoint = sftp_endpoint()
    inbox = Path(small_la["TETHER_CONFIG_DIR"]).parent / "inbox" / "school_mis_a"
    local = sorted(inbox.iterdir())
    for path in local:
        sftp_client.put(str(path), f"{endpoint.remote_dir}/{path.name}")
    proxy = SwitchableProxy(int(sftp_env["TETHER_TEST_SFTP_PORT"]))
    config = tmp_path / "config"
    shutil.copytree(small_la["TETHER_CONFIG_DIR"], config)
    (config / "sources.toml").write_text("\n".join([
        "[sources.school_mis_a]", 'transport = "sftp"', 'host_env = "TETHER_TEST_SFTP_HOST"',
        'port_env = "FAULT_SFTP_PORT"', 'username_env = "TETHER_TEST_SFTP_USER"',
        'key_file_env = "TETHER_TEST_SFTP_KEY_FILE"', 'known_hosts_file_env = "FAULT_SFTP_KNOWN_HOSTS"',
        f'remote_dir = "{endpoint.remote_dir}"', 'completeness = "stable"', "stable_seconds = 0",
        'after_success = "archive"', f'archive_dir = "{endpoint.archive_dir}"',
        "max_retries = 2", "backoff_seconds = 0.01", "connect_timeout = 10",
        "[[sources.school_mis_a.files]]", 'pattern = "*_attendance_*.csv"', 'layout = "mis-a"',
        "[[sources.school_mis_a.files]]", 'pattern = "*_pupils_*.csv"', 'layout = "mis-a-pupils"', ""]))
    for k, v in {**small_la, "FAULT_SFTP_PORT": str(proxy.port),
                 "FAULT_SFTP_KNOWN_HOSTS": known_hosts_for(proxy.port)}.items():
        monkeypatch.setenv(k, v)
    url = f"sqlite:///{tmp_path / 'tether.sqlite'}"
    init_store(url)[0].dispose()
    ctx = TetherContext(url, str(config), str(tmp_path / "data"), AS_OF.isoformat())
    source = ctx.config.sources["school_mis_a"]
    land = lambda: run_exclusively(ctx, "land", stages.land_source, source, source=source.source_id)  # noqa: E731
    try:
        with pytest.raises(SftpSourceError) as away:
            land()
        message = str(away.value)
        assert "\n" not in message and "'school_mis_a'" in message and f"127.0.0.1:{proxy.port}" in message
        assert "failed after 3 attempt(s)" in message and proxy.dropped == 3      # the whole retry budget
        assert ctx.store.read(t.landing_manifest).empty                           # nothing landed ...
        assert sorted(sftp_client.listdir(endpoint.remote_dir)) == [p.name for p in local]   # ... nothing lost

        proxy.up = True
        figures = land()
        distinct = {p.read_bytes() for p in local}
        assert figures["files_new"] == len(distinct)
        assert figures["files_new"] + figures["files_already_landed"] == len(local)
        manifest = ctx.store.read(t.landing_manifest)
        assert len(manifest) == len(distinct) and manifest["file_id"].is_unique
        assert sftp_client.listdir(endpoint.remote_dir) == []
        assert sorted(sftp_client.listdir(endpoint.archive_dir)) == [p.name for p in local]
        assert land()["files_new"] == 0 and len(ctx.store.read(t.landing_manifest)) == len(distinct)
        assert proxy.dropped == 3
    finally:
        proxy.close()
        ctx.store.dispose()
