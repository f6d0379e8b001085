"""A fresh machine has no ODBC driver manager until `make test` installs one: the demo must not need it.

pyodbc links against unixODBC's libodbc.so.2 when imported. Here a stand-in `pyodbc` module that
fails the way pyodbc fails without the library is put first on the path, and the demo runs every
asset through Dagster end to end.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

MISSING = 'raise ImportError("libodbc.so.2: cannot open shared object file: No such file or directory")\n'


def _without_driver_manager(tmp_path: Path) -> dict[str, str]:
    fake = tmp_path / "no_odbc"
    fake.mkdir()
    (fake / "pyodbc.py").write_text(MISSING)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env.update(PYTHONPATH=str(fake), DAGSTER_HOME=str(tmp_path / "dagster_home"))
    return env


def test_the_demo_runs_on_a_machine_without_the_odbc_driver_manager(tmp_path):
    env = _without_driver_manager(tmp_path)
    assert subprocess.run([sys.executable, "-c", "import pyodbc"], env=env, capture_output=True).returncode != 0
    demo = subprocess.run([sys.executable, "-m", "orchestration.cli", "demo", "--dir", str(tmp_path / "demo"),
                           "--schools", "2", "--pupils", "120"], env=env, capture_output=True, text=True,
                          timeout=600)
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "Tether summary" in demo.stdout


def test_an_odbc_source_without_the_driver_manager_names_the_packages_to_install(tmp_path):
    env = _without_driver_manager(tmp_path)
    code = ("from connectors import odbc\n"
            "try:\n    odbc.driver_manager()\n"
            "except odbc.OdbcSourceError as exc:\n    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=Path.cwd())
    assert "apt-get install unixodbc" in out.stdout and "libodbc.so.2" in out.stdout
