"""An SFTP source's poll state lives in the store; a JSON state file left by an earlier Tether in the
data folder is taken into the store by the source's next landing, then removed."""
from __future__ import annotations

import json
from pathlib import Path

from connectors.sftp_state import LANDED, OBSERVED, poll_state_get, poll_state_set
from connectors.store_setup import init_store
from orchestration.remote_sources import legacy_sftp_state_path, sftp_poll_state, sftp_state_key
from orchestration.resources import TetherContext
from sharing.keys import write_new_keys

SOURCES_TOML = """
[sources.schools_sftp]
transport = "sftp"
host = "sftp.example.invalid"
username = "tether"
key_file = "/etc/tether/sftp_key"
known_hosts_file = "/etc/tether/known_hosts"
remote_dir = "/outgoing"
[[sources.schools_sftp.files]]
pattern = "*_attendance_*.csv"
layout = "mis-a"
"""
CHILD_NAMED = "A123456789012_attendance_20261130.csv"
LEGACY = {OBSERVED: {"8861234_attendance_20261130.csv": {"size": 10, "mtime": 1_796_000_000, "since": 1_796_000_060.5}},
          LANDED: {CHILD_NAMED: [20, 1_795_990_000]}}


def _context(tmp_path: Path, monkeypatch) -> TetherContext:
    for k, v in write_new_keys(tmp_path / "keys").items():
        monkeypatch.setenv(k, v)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "sources.toml").write_text(SOURCES_TOML)
    url = f"sqlite:///{tmp_path / 'tether.sqlite'}"
    init_store(url, str(tmp_path / "data"))[0].dispose()
    return TetherContext(url, str(tmp_path / "config"), str(tmp_path / "data"))


def _legacy_file(ctx: TetherContext, source) -> Path:
    path = legacy_sftp_state_path(ctx, source)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_text(json.dumps(LEGACY))
    return path


def _keyed(ctx: TetherContext) -> dict:
    key = sftp_state_key(ctx)
    return {OBSERVED: {key(n): v for n, v in LEGACY[OBSERVED].items()},
            LANDED: {key(n): v for n, v in LEGACY[LANDED].items()}}


def test_a_landing_takes_the_state_file_into_the_store_and_removes_it(tmp_path, monkeypatch):
    ctx = _context(tmp_path, monkeypatch)
    source = ctx.config.sources["schools_sftp"]
    path = _legacy_file(ctx, source)

    assert sftp_poll_state(ctx, source, adopt_file=True) == _keyed(ctx)
    assert poll_state_get(ctx.store, source.source_id) == _keyed(ctx)
    assert not path.exists() and not path.parent.exists()
    assert sftp_poll_state(ctx, source, adopt_file=True) == _keyed(ctx)       # from the store from now on


def test_a_sensor_tick_reads_the_state_file_and_leaves_it_for_the_landing(tmp_path, monkeypatch):
    ctx = _context(tmp_path, monkeypatch)
    source = ctx.config.sources["schools_sftp"]
    path = _legacy_file(ctx, source)

    assert sftp_poll_state(ctx, source, adopt_file=False) == _keyed(ctx)
    assert path.exists() and poll_state_get(ctx.store, source.source_id) == {OBSERVED: {}, LANDED: {}}


def test_the_stores_state_wins_over_a_state_file_left_behind(tmp_path, monkeypatch):
    ctx = _context(tmp_path, monkeypatch)
    source = ctx.config.sources["schools_sftp"]
    newer = {OBSERVED: {}, LANDED: {sftp_state_key(ctx)("other.csv"): [1, 2]}}
    poll_state_set(ctx.store, source.source_id, newer, ctx.as_of)
    path = _legacy_file(ctx, source)

    assert sftp_poll_state(ctx, source, adopt_file=True) == newer
    assert not path.exists() and poll_state_get(ctx.store, source.source_id) == newer
