"""`tether config check`, `tether init` and the store refusal, run as an operator runs them."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

SOURCES_TOML = """
[sources.school_mis_a]
transport = "folder"
path = "inbox/school_mis_a"
[[sources.school_mis_a.files]]
pattern = "*_attendance_*.csv"
layout = "mis-a"
"""


def _tether(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    return subprocess.run([sys.executable, "-m", "orchestration.cli", *args], env={**base, **env}, cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def _config(tmp_path: Path, sources: str = SOURCES_TOML) -> Path:
    config = tmp_path / "config"
    config.mkdir()
    (config / "sources.toml").write_text(sources)
    (tmp_path / "inbox" / "school_mis_a").mkdir(parents=True)
    return config


def test_config_check_reports_a_usable_folder(tmp_path):
    config = _config(tmp_path)
    done = _tether("config", "check", str(config), env={}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "configuration OK: 1 sources, 0 schools, 9 layouts"


def test_config_check_lists_each_problem_on_one_line_and_exits_2(tmp_path):
    config = _config(tmp_path, SOURCES_TOML.replace('"folder"', '"ftp"').replace("path =", "pth ="))
    (config / "schools.toml").write_text('[schools."8864001"]\nname = "Hillside"\nexpected_by = "9.30am"\n')
    done = _tether("config", "check", env={"TETHER_CONFIG_DIR": str(config)}, cwd=tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stdout.splitlines() == [
        "sources.toml: sources.school_mis_a.transport: 'ftp' is not allowed; expected one of folder, sftp, odbc",
        "schools.toml: schools.8864001.expected_by: '9.30am' is not a time; write HH:MM, e.g. \"09:30\"",
        f"configuration NOT usable: 2 problem(s) in {config}",
    ]


def test_config_check_warns_of_an_unset_environment_variable_but_passes(tmp_path):
    sftp = SOURCES_TOML.replace('transport = "folder"\npath = "inbox/school_mis_a"',
                                'transport = "sftp"\nhost_env = "MIS_A_HOST"\nusername = "t"\nkey_file = "/k"\n'
                                'known_hosts_file = "/kh"')
    done = _tether("config", "check", str(_config(tmp_path, sftp)), env={}, cwd=tmp_path)
    assert done.returncode == 0
    assert done.stdout.splitlines()[0] == (
        "warning: sources.toml: sources.school_mis_a.host_env: environment variable MIS_A_HOST is not set; the "
        "sftp source 'school_mis_a' cannot connect until it is")


def _deployment(tmp_path: Path, url: str) -> dict[str, str]:
    return {"TETHER_DATABASE_URL": url, "TETHER_CONFIG_DIR": str(_config(tmp_path)),
            "TETHER_DATA_DIR": str(tmp_path / "data"), "TETHER_AS_OF": "2026-11-30T09:45"}


def test_init_creates_the_store_then_status_works(tmp_path):
    store = tmp_path / "var" / "tether.sqlite"
    env = _deployment(tmp_path, f"sqlite:///{store}")
    done = _tether("init", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"created a new store at sqlite:///{store}, migrated to the newest schema"
    assert store.is_file() and stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700

    again = _tether("init", env=env, cwd=tmp_path)
    assert again.returncode == 0
    assert again.stdout.strip() == f"the store at sqlite:///{store} already existed; migrated it to the newest schema"

    status = _tether("status", env=env, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert "Traceback" not in status.stderr and status.stdout.strip()


def test_status_against_a_missing_sqlite_file_exits_2_with_the_init_hint(tmp_path):
    store = tmp_path / "tether.sqlite"
    done = _tether("status", env=_deployment(tmp_path, f"sqlite:///{store}"), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr == (f"tether: TETHER_DATABASE_URL: the SQLite store {store} does not exist; run `tether init` "
                           f"to create it (or correct the path)\n")
    assert not store.exists()


def test_a_postgres_url_exits_2_suggesting_postgresql_psycopg2(tmp_path):
    done = _tether("init", env={"TETHER_DATABASE_URL": "postgres://tether@127.0.0.1/tether"}, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("tether: TETHER_DATABASE_URL: the scheme 'postgres://' is not understood")
    assert "postgresql+psycopg2://" in done.stderr and done.stderr.count("\n") == 1


def test_a_configuration_error_during_a_command_is_one_line_exit_2(tmp_path):
    env = _deployment(tmp_path, f"sqlite:///{tmp_path / 'tether.sqlite'}")
    assert _tether("init", env=env, cwd=tmp_path).returncode == 0
    (Path(env["TETHER_CONFIG_DIR"]) / "signals.toml").write_text("persistant_absence_threshold = 0.1\n")
    done = _tether("status", env=env, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("tether: signals.toml: persistant_absence_threshold: unknown key")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
