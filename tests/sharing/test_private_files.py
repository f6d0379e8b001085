"""Keys, the store and landing copies are owner-only from their first byte, whatever the umask."""
from __future__ import annotations

import datetime as dt
import os
import stat

import pytest

from connectors.landing import Landing
from connectors.store import Store
from sharing import private_files
from sharing.keys import keys_from_env, write_new_keys
from sharing.private_files import private_dir

OTHERS = stat.S_IRWXG | stat.S_IRWXO


@pytest.fixture
def permissive_umask():
    """A umask that would leave files world-writable: only explicit modes keep them private."""
    old = os.umask(0)
    yield
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_key_files_are_created_0600_exclusively_never_readable_by_others_even_for_a_moment(
        tmp_path, monkeypatch, permissive_umask):
    opened = []
    real_open = os.open

    def spy(path, flags, mode=0o777, *args, **kwargs):
        opened.append((str(path), flags, mode))
        return real_open(path, flags, mode, *args, **kwargs)
    monkeypatch.setattr(private_files.os, "open", spy)
    chmods = []
    monkeypatch.setattr(os, "chmod", lambda *a, **k: chmods.append(a))

    env = write_new_keys(tmp_path / "secrets" / "keys")

    key_files = {env["TETHER_TOKEN_KEY_FILE"], env["TETHER_IDENTITY_KEY_FILE"]}
    assert {path for path, _, _ in opened} == key_files
    for _, flags, mode in opened:
        assert mode == 0o600
        assert flags & os.O_CREAT and flags & os.O_EXCL and flags & os.O_WRONLY
    assert chmods == []                                     # created private, never tightened after
    for path in key_files:
        assert _mode(path) == 0o600
    assert _mode(tmp_path / "secrets" / "keys") == 0o700 and _mode(tmp_path / "secrets") == 0o700
    assert len(keys_from_env(env).token_key) == 32


def test_existing_key_files_are_never_overwritten(tmp_path):
    first = write_new_keys(tmp_path / "keys")
    before = keys_from_env(first)
    assert write_new_keys(tmp_path / "keys") == first
    assert keys_from_env(first) == before


def test_private_dir_makes_every_missing_folder_0700_and_leaves_existing_ones(tmp_path, permissive_umask):
    (tmp_path / "shared").mkdir(mode=0o755)
    os.chmod(tmp_path / "shared", 0o755)
    private_dir(tmp_path / "shared" / "a" / "b")
    assert _mode(tmp_path / "shared") == 0o755
    assert _mode(tmp_path / "shared" / "a") == 0o700 and _mode(tmp_path / "shared" / "a" / "b") == 0o700


def test_landing_copies_and_their_folders_are_owner_only(store, tmp_path, permissive_umask):
    landing = Landing(tmp_path / "data" / "landing", store, bytes(range(32)))
    got = landing.receive("mis-a-8881234", "8881234_20260903_0820.csv", b"UPN,AM\r\nA801200001012,N\r\n",
                          layout="mis-a", received_at=dt.datetime(2026, 9, 3, 8, 20, tzinfo=dt.timezone.utc))
    copy = landing.root / got.landing_path
    assert _mode(copy) == 0o600
    folder = copy.parent
    while folder != tmp_path:
        assert _mode(folder) == 0o700, folder
        folder = folder.parent


def test_a_new_sqlite_store_and_its_wal_are_owner_only(tmp_path, permissive_umask):
    path = tmp_path / "var" / "tether.sqlite"
    store = Store(f"sqlite:///{path}")
    try:
        store.migrate()
        with store.engine.connect() as conn:    # an open connection keeps the -wal and -shm files
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2    # FULL: commits survive a power cut
            for name in ("tether.sqlite", "tether.sqlite-wal", "tether.sqlite-shm"):
                assert _mode(path.parent / name) == 0o600, name
        assert _mode(path.parent) == 0o700
    finally:
        store.dispose()
