"""Store.exclusive and Store.serialise without a second process: the wait setting, stable lock
keys, and the one-line error an unreachable store gives."""
from __future__ import annotations

import pytest

from connectors.store import (
    LOCK_WAIT_DEFAULT, Store, StoreBusyError, StoreUnavailableError, lock_key, lock_wait_seconds,
)
from schemas import tables as t


def test_the_wait_for_another_run_is_configurable_and_bounded():
    assert lock_wait_seconds({}) == LOCK_WAIT_DEFAULT == 600
    assert lock_wait_seconds({"TETHER_LOCK_WAIT_SECONDS": "0"}) == 0
    assert lock_wait_seconds({"TETHER_LOCK_WAIT_SECONDS": "2.5"}) == 2.5
    for bad in ("soon", "-1"):
        with pytest.raises(ValueError, match="TETHER_LOCK_WAIT_SECONDS"):
            lock_wait_seconds({"TETHER_LOCK_WAIT_SECONDS": bad})


def test_lock_keys_are_the_same_in_every_process_and_fit_a_postgresql_int4():
    assert lock_key("stage:school_mis_a") == lock_key("stage:school_mis_a")
    assert lock_key("stage:school_mis_a") != lock_key("stage:school_mis_b")
    assert all(0 <= lock_key(f"stage:s{n}") < 2 ** 31 for n in range(200))


def test_a_sqlite_store_holds_a_stage_against_another_store_on_the_same_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'tether.sqlite'}"
    first, second = Store(url), Store(url)
    with first.exclusive("flags", what="raising today's flags"):
        busy = r"^another Tether run is raising today's flags \(tether pid \d+ since "
        with pytest.raises(StoreBusyError, match=busy):
            with second.exclusive("flags", what="raising today's flags", wait_seconds=0):
                pass
    with second.exclusive("flags", what="raising today's flags", wait_seconds=0):
        pass
    assert oct((tmp_path / ".tether.sqlite.locks").stat().st_mode & 0o777) == "0o700"


def test_serialise_needs_a_transaction(sqlite_url):
    store = Store(sqlite_url)
    with pytest.raises(RuntimeError, match="inside `with store.begin"):
        store.serialise("replace:child_record")
    with store.begin():
        store.serialise("replace:child_record")      # SQLite: BEGIN IMMEDIATE already serialises


def test_an_unreachable_store_is_one_line_naming_it_without_its_password():
    store = Store("postgresql+psycopg2://tether:secret@127.0.0.1:1/tether")
    with pytest.raises(StoreUnavailableError) as down:
        store.read(t.flags)
    message = str(down.value)
    assert "\n" not in message and "secret" not in message
    assert message.startswith("store postgresql+psycopg2://tether:***@127.0.0.1:1/tether: ")
    assert "run again" in message and down.value.__cause__ is not None
