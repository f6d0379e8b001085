"""`tether init` creates the store and binds it to its keys; a later init with another key is refused."""
from __future__ import annotations

import os
import subprocess
import sys

from connectors.store import Store
from connectors.store_keys import current_key_ids
from sharing.keys import keys_from_env, write_new_keys


def _tether(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestration.cli", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=300)


def test_init_records_the_keys_and_refuses_another_token_key_in_one_line(tmp_path):
    env = {"TETHER_DATABASE_URL": f"sqlite:///{tmp_path / 'tether.sqlite'}",
           "TETHER_CONFIG_DIR": str(tmp_path / "config"), "TETHER_DATA_DIR": str(tmp_path / "data"),
           **write_new_keys(tmp_path / "keys")}
    (tmp_path / "config").mkdir()
    keys = keys_from_env(env)
    first = _tether(env, "init")
    assert first.returncode == 0, first.stderr
    assert f"token key {keys.token_key_id} and identity key {keys.identity_key_id}" in first.stdout
    assert _tether(env, "init").returncode == 0                 # the same keys again: fine

    other = write_new_keys(tmp_path / "other")
    refused = _tether({**env, "TETHER_TOKEN_KEY_FILE": other["TETHER_TOKEN_KEY_FILE"]}, "init")
    assert refused.returncode == 3            # a key the store was not built with: exit 3 (orchestration/cli.py)
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and f"was built with token key {keys.token_key_id}, not " in lines[0]
    assert f"(TETHER_TOKEN_KEY_FILE={other['TETHER_TOKEN_KEY_FILE']})" in lines[0]
    store = Store(env["TETHER_DATABASE_URL"])
    try:
        assert current_key_ids(store) == {"token": keys.token_key_id, "identity": keys.identity_key_id}
    finally:
        store.dispose()
