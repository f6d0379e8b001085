"""Everything Tether creates while running a pipeline is readable by its owner alone.

`tether run` is started with the common umask 022 on a small synthetic LA; afterwards the store
file and its -wal, the landing folder and copies, the keys and Dagster's run storage have no
group or other permission bits.
"""
from __future__ import annotations

import datetime as dt
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from zoneinfo import ZoneInfo

from sharing.keys import write_new_keys
from synthetic.generate import generate_la

AS_OF = dt.datetime(2026, 11, 30, 9, 45, tzinfo=ZoneInfo("Europe/London"))
OTHERS = stat.S_IRWXG | stat.S_IRWXO

pytestmark = pytest.mark.integration


def _exposed(root: Path) -> list[str]:
    """Files and folders under `root` (itself included) with any group or other bit, with their modes."""
    paths = [root, *root.rglob("*")]
    return [f"{p} {stat.filemode(p.stat().st_mode)}" for p in paths if p.stat().st_mode & OTHERS]


def test_a_pipeline_run_leaves_nothing_readable_by_others(tmp_path):
    la = tmp_path / "la"
    generate_la(la, seed=11, n_schools=2, n_pupils=120, as_of=AS_OF)
    deployment = tmp_path / "deployment"       # what Tether creates lives here
    store_file = deployment / "store" / "tether.sqlite"
    env = {**os.environ,
           "TETHER_CONFIG_DIR": str(la / "config"), "TETHER_DATA_DIR": str(deployment / "data"),
           "TETHER_DATABASE_URL": f"sqlite:///{store_file}", "TETHER_AS_OF": AS_OF.isoformat(),
           "DAGSTER_HOME": str(deployment / "dagster_home")}
    old = os.umask(0o022)
    try:
        env.update(write_new_keys(deployment / "keys"))
        for command in ("init", "run"):
            run = subprocess.run([sys.executable, "-m", "orchestration.cli", command], env=env,
                                 capture_output=True, text=True, timeout=900, preexec_fn=lambda: os.umask(0o022))
            assert run.returncode in (0, 1), run.stderr[-2000:]
    finally:
        os.umask(old)
    assert run.returncode == 0, run.stderr[-3000:]

    landed = [p for p in (deployment / "data" / "landing").rglob("*.bin")]
    runs = list((deployment / "dagster_home").rglob("*.db"))
    assert landed and runs and store_file.exists()            # the things checked are really there
    assert _exposed(deployment) == []

    reader = sqlite3.connect(store_file)                       # a reader brings the -wal back
    try:
        reader.execute("SELECT count(*) FROM landing_manifest").fetchone()
        assert _exposed(store_file.parent) == []
        assert (store_file.parent / "tether.sqlite-wal").exists()
    finally:
        reader.close()
