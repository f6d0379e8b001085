"""A store built with one pair of keys refuses to run under another, before it writes anything.

A different token key would mint new tokens for every child (each child twice); a different
identity key would encrypt landing copies the store's own key cannot read. The deployment is
built by a full run, a new register is dropped in, and then `tether run` and a Dagster run are
started with a wrong token key and with a wrong identity key: each is refused with one line,
and every table keeps exactly the rows it had (on SQLite and PostgreSQL).
"""
from __future__ import annotations

import datetime as dt
import io
import os
import shutil
import subprocess
import sys
from connectors.store_setup import init_store
from pathlib import Path

import pytest
from sqlalchemy import func, select
from zoneinfo import ZoneInfo

from connectors.store import Store
from connectors.store_keys import current_key_ids, store_label
from orchestration.runner import run_job
from schemas.tables import metadata
from sharing.keys import key_id, keys_from_env, write_new_keys
from synthetic.generate import generate_la

AS_OF = dt.datetime(2026, 11, 30, 9, 45, tzinfo=ZoneInfo("Europe/London"))

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def small_la(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("la")
    generate_la(root, seed=11, n_schools=3, n_pupils=300, as_of=AS_OF)
    return root


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def built(request, small_la, tmp_path_factory):
    """A deployment after one full run with its own keys, then a new register waiting in the inbox."""
    root = tmp_path_factory.mktemp(f"deployment_{request.param}")
    shutil.copytree(small_la, root / "la")
    if request.param == "sqlite":
        url = f"sqlite:///{root / 'tether.sqlite'}"
    else:
        from tests.conftest import create_pg_database, drop_pg_database
        url = create_pg_database()
        request.addfinalizer(lambda: drop_pg_database(url))
    env = {"TETHER_CONFIG_DIR": str(root / "la" / "config"), "TETHER_DATA_DIR": str(root / "data"),
           "TETHER_DATABASE_URL": url, "TETHER_AS_OF": AS_OF.isoformat(),
           "DAGSTER_HOME": str(root / "dagster_home"), **write_new_keys(root / "keys")}
    init_store(url, env["TETHER_DATA_DIR"])[0].dispose()          # as `tether init` does
    with pytest.MonkeyPatch.context() as patch:
        for k, v in env.items():
            patch.setenv(k, v)
        assert run_job("full_refresh", stream=io.StringIO()).success
        keys = keys_from_env()
    inbox = root / "la" / "inbox" / "school_mis_a"
    register = sorted(inbox.glob("*_attendance_*.csv"))[0]
    late = register.read_bytes() + b"\n"                        # new bytes: a file that would be landed
    (inbox / register.name.replace(".csv", "_resent.csv")).write_bytes(late)
    return root, env, keys


def _counts(url: str) -> dict[str, int]:
    store = Store(url)
    try:
        with store.engine.connect() as conn:
            return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                    for t in metadata.sorted_tables}
    finally:
        store.dispose()


def _landed_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "data").rglob("*") if p.is_file())


def _wrong(root: Path, env: dict, purpose: str) -> dict:
    """The deployment's environment with one key replaced by a new (valid) one."""
    other = write_new_keys(root / f"other_{purpose}_keys")
    variable = f"TETHER_{purpose.upper()}_KEY_FILE"
    return {**env, variable: other[variable]}


@pytest.mark.parametrize("purpose", ["token", "identity"])
def test_tether_run_under_a_wrong_key_is_refused_in_one_line_before_any_write(built, purpose):
    root, env, keys = built
    before, files = _counts(env["TETHER_DATABASE_URL"]), _landed_files(root)
    wrong = _wrong(root, env, purpose)
    offered = key_id(bytes.fromhex(Path(wrong[f"TETHER_{purpose.upper()}_KEY_FILE"]).read_text()))
    built_with = keys.token_key_id if purpose == "token" else keys.identity_key_id

    run = subprocess.run([sys.executable, "-m", "orchestration.cli", "run"], env={**os.environ, **wrong},
                         capture_output=True, text=True, timeout=600)

    assert run.returncode == 3, run.stderr[-2000:]
    store = Store(env["TETHER_DATABASE_URL"])
    try:
        label = store_label(store)
    finally:
        store.dispose()
    assert run.stderr.strip().splitlines() == [
        f"tether: the store at {label} was built with {purpose} key {built_with}, not {offered} "
        f"(TETHER_{purpose.upper()}_KEY_FILE={wrong[f'TETHER_{purpose.upper()}_KEY_FILE']}): use the key the "
        f"store was built with; rotating keys is `tether keys rotate` (not yet available)"]
    assert _counts(env["TETHER_DATABASE_URL"]) == before
    assert _landed_files(root) == files


@pytest.mark.parametrize("purpose", ["token", "identity"])
def test_a_dagster_run_under_a_wrong_key_fails_every_step_before_any_write(built, purpose, monkeypatch):
    root, env, _ = built
    before, files = _counts(env["TETHER_DATABASE_URL"]), _landed_files(root)
    for k, v in _wrong(root, env, purpose).items():
        monkeypatch.setenv(k, v)
    result = run_job("full_refresh", stream=io.StringIO())
    assert not result.success
    reasons = " ".join(str(e.event_specific_data) for e in result.all_events if e.is_failure)
    assert f"was built with {purpose} key" in reasons
    assert _counts(env["TETHER_DATABASE_URL"]) == before
    assert _landed_files(root) == files


def test_the_right_keys_still_run_and_land_the_waiting_register(built, monkeypatch):
    """The refusals above were not for want of something to write."""
    root, env, keys = built
    before, files = _counts(env["TETHER_DATABASE_URL"]), _landed_files(root)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert run_job("full_refresh", stream=io.StringIO()).success
    after = _counts(env["TETHER_DATABASE_URL"])
    assert after["landing_manifest"] == before["landing_manifest"] + 1
    assert len(_landed_files(root)) > len(files)
    store = Store(env["TETHER_DATABASE_URL"])
    try:
        assert current_key_ids(store) == {"token": keys.token_key_id, "identity": keys.identity_key_id}
    finally:
        store.dispose()
