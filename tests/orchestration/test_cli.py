"""The `tether` command line behaves like a mature tool: help, version, exit codes, one-line errors."""
from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert

from connectors.store_setup import init_store

from connectors.store import Store
from orchestration import cli
from orchestration.progress import StepDisplay
from schemas import tables as t
from sharing.keys import write_new_keys
from synthetic.generate import generate_la

AS_OF = "2026-11-30T09:45"          # a Monday in the autumn term
REPO = Path(__file__).resolve().parents[2]


def _walk(parser: argparse.ArgumentParser, path: str = "tether"):
    """Every (parser path, action) of the parser and all its subparsers."""
    for action in parser._actions:
        yield path, action
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                yield f"{path} {choice.dest}", choice
            for name, sub in action.choices.items():
                yield from _walk(sub, f"{path} {name}")


def test_version_prints_the_installed_package_version(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"tether {version('tether')}"


def test_every_subcommand_and_option_has_help():
    walked = list(_walk(cli.build_parser()))
    assert {p for p, _ in walked} >= {"tether status", "tether demo", "tether keys init", "tether audit verify"}
    for path, action in walked:
        assert action.help and action.help.strip(), f"{path}: {action.dest} has no help"


def test_exit_codes_are_documented_in_the_module_and_the_help():
    for code in ("0  all well", "1  attention needed", "2  usage or configuration error", "3  a failure"):
        assert code in cli.__doc__ and code in cli.EXIT_CODES_HELP
    assert "exit status:" in cli.build_parser().format_help()


# --- tether status against a small store -------------------------------------------------------

SCHOOLS_TOML = """
[schools."8862001"]
name = "Riverside Primary"
source = "school_mis_a"
expected_by = "09:30"
"""

SOURCES_TOML = """
[sources.school_mis_a]
transport = "folder"
path = "inbox/school_mis_a"
[[sources.school_mis_a.files]]
pattern = "*_attendance_*.csv"
layout = "mis-a"
"""


@pytest.fixture
def deployment(tmp_path, monkeypatch):
    """One school whose register for the as-of day is in, on a SQLite store; no Dagster runs yet."""
    config = tmp_path / "config"
    config.mkdir()
    (config / "schools.toml").write_text(SCHOOLS_TOML)
    (config / "sources.toml").write_text(SOURCES_TOML)
    url = f"sqlite:///{tmp_path / 'tether.sqlite'}"
    store = Store(url)
    store.migrate()
    now = dt.datetime(2026, 11, 30, 9, 10, tzinfo=dt.timezone.utc)
    with store.begin() as conn:
        conn.execute(insert(t.staged_marks).values(
            laestab="8862001", pupil_ref="p" * 16, session_date=dt.date(2026, 11, 30), session="AM", mark="/",
            category="present", recorded_at=now, source_id="school_mis_a", file_id="f" * 64, row_number=1))
        conn.execute(insert(t.school_registers).values(
            laestab="8862001", session_date=dt.date(2026, 11, 30), session="AM", last_recorded_at=now))
    for k, v in {"TETHER_DATABASE_URL": url, "TETHER_CONFIG_DIR": str(config),
                 "TETHER_DATA_DIR": str(tmp_path / "data"), "TETHER_AS_OF": AS_OF,
                 "DAGSTER_HOME": str(tmp_path / "dagster_home")}.items():
        monkeypatch.setenv(k, v)
    yield store
    store.dispose()


def _manifest_row(**counts) -> dict:
    row = dict(file_id="a" * 64, source_id="school_mis_a", file_name="8862001_attendance_20261130.csv",
               layout="mis-a", received_at=dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.timezone.utc),
               size_bytes=100, landing_path="x", status="staged", rows_read=10, rows_staged=10,
               rows_quarantined=0)
    row.update(counts)
    return row


def test_status_exits_0_when_all_is_well(deployment, capsys):
    with deployment.begin() as conn:
        conn.execute(insert(t.landing_manifest).values(_manifest_row()))
    assert cli.main(["status"]) == 0
    out = capsys.readouterr().out
    assert "Needs attention: nothing" in out
    assert cli.main(["status", "--quiet"]) == 0
    assert capsys.readouterr().out == ""          # cron mails nothing when all is well
    assert cli.main(["status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["attention"] == []


def test_status_exits_1_and_names_quarantined_rows_and_failed_files(deployment, capsys):
    with deployment.begin() as conn:
        conn.execute(insert(t.landing_manifest).values(_manifest_row(rows_staged=7, rows_quarantined=3)))
        conn.execute(insert(t.landing_manifest).values(_manifest_row(file_id="b" * 64, status="failed",
                                                                     rows_read=None, rows_staged=None,
                                                                     rows_quarantined=None)))
    assert cli.main(["status"]) == 1
    out = capsys.readouterr().out
    assert "Needs attention (2)" in out
    assert "source school_mis_a: 3 row(s) quarantined" in out
    assert "source school_mis_a: 1 file(s) failed" in out
    assert cli.main(["status", "--json"]) == 1
    kinds = {a["kind"] for a in json.loads(capsys.readouterr().out)["attention"]}
    assert kinds == {"rows_quarantined", "files_failed"}


def test_status_exits_1_when_a_school_has_not_sent_its_register(deployment, capsys, monkeypatch):
    monkeypatch.setenv("TETHER_AS_OF", "2026-12-01T10:00")       # Tuesday's register is not in
    assert cli.main(["status", "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "school 8862001 Riverside Primary: register late" in out


@pytest.fixture(scope="module")
def tiny_la(tmp_path_factory):
    """A tiny synthetic LA (one late school, planted bad rows) and its environment, not yet run."""
    root = tmp_path_factory.mktemp("tiny")
    report = generate_la(root / "la", seed=21, n_schools=2, n_pupils=60,
                         as_of=dt.datetime.fromisoformat(AS_OF).replace(tzinfo=ZoneInfo("Europe/London")))
    env = {"TETHER_CONFIG_DIR": str(root / "la" / "config"), "TETHER_DATA_DIR": str(root / "data"),
           "TETHER_DATABASE_URL": f"sqlite:///{root / 'tether.sqlite'}", "TETHER_AS_OF": AS_OF,
           "DAGSTER_HOME": str(root / "dagster_home"), **write_new_keys(root / "keys")}
    init_store(env["TETHER_DATABASE_URL"], env["TETHER_DATA_DIR"])[0].dispose()
    return root, report, env


def test_status_reads_failed_checks_from_the_dagster_instance(tiny_la, monkeypatch, capsys):
    from orchestration.runner import run_jobs
    root, report, env = tiny_la
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    stream = io.StringIO()
    results = run_jobs("full_refresh", stream=stream)
    assert results[0].success
    assert cli._run_exit_code(results) == 0
    lines = stream.getvalue().splitlines()                     # not a terminal: one line per step
    assert any(line.strip().endswith("staged/school_mis_a: done") for line in lines)
    assert cli.main(["status", "--json"]) == 1
    summary = json.loads(capsys.readouterr().out)
    failed = {(c["asset"], c["check"]) for c in summary["failed_checks"]}
    assert failed == {(f"staged/{s['source_id']}", f"register_fresh_{s['laestab']}")
                      for s in summary["schools_not_fresh"]}
    assert summary["schools_not_fresh"][0]["laestab"] == report.late_school
    kinds = {a["kind"] for a in summary["attention"]}
    assert {"school_late", "rows_quarantined", "check_failed"} <= kinds
    assert cli.main(["status"]) == 1
    assert f"check register_fresh_{report.late_school} on staged/" in capsys.readouterr().out


def test_a_failed_step_prints_its_cause_in_one_line(tiny_la, tmp_path, monkeypatch):
    from orchestration.runner import run_jobs
    _, _, env = tiny_la
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("TETHER_DATABASE_URL", f"sqlite:///{tmp_path / 'other.sqlite'}")
    monkeypatch.setenv("TETHER_DATA_DIR", str(tmp_path / "data"))
    init_store(f"sqlite:///{tmp_path / 'other.sqlite'}")[0].dispose()
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    missing = tmp_path / "no_such_key.hex"
    monkeypatch.setenv("TETHER_TOKEN_KEY_FILE", str(missing))
    stream = io.StringIO()
    results = run_jobs("full_refresh", stream=stream)
    causes = [line for line in stream.getvalue().splitlines() if "see the Dagster UI" in line]
    assert causes and all(f"TETHER_TOKEN_KEY_FILE points at {missing}, which does not exist (KeyError_); "
                          f"see the Dagster UI (make dev), run {results[0].run_id}" in line for line in causes)
    assert [line.split(" failed: ")[0].strip() for line in causes] == ["resources"]   # no step ran under no key
    assert cli._run_exit_code(results) == cli.EXIT_FAILURE


def test_run_with_a_missing_key_file_says_so_in_one_line_without_a_traceback(tiny_la, tmp_path):
    _, _, env = tiny_la
    missing = tmp_path / "gone.hex"
    env = {**os.environ, **env, "TETHER_TOKEN_KEY_FILE": str(missing),
           "TETHER_DATABASE_URL": f"sqlite:///{tmp_path / 'other.sqlite'}"}
    init_store(env["TETHER_DATABASE_URL"])[0].dispose()
    env.pop("TETHER_DEBUG", None)
    done = subprocess.run([sys.executable, "-m", "orchestration.cli", "run"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == cli.EXIT_FAILURE
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"tether: TETHER_TOKEN_KEY_FILE points at {missing}, which does not exist; the keys are "
        f"TETHER_TOKEN_KEY[_FILE] and TETHER_IDENTITY_KEY[_FILE] (README: Environment)"]


def test_an_unreachable_store_is_one_line_and_exit_3(deployment, monkeypatch, capsys):
    monkeypatch.setenv("TETHER_DATABASE_URL", "postgresql+psycopg2://tether:secret@127.0.0.1:1/tether")
    assert cli.main(["status"]) == cli.EXIT_FAILURE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tether: the store at postgresql+psycopg2://tether:***@127.0.0.1:1/tether")
    assert "secret" not in err[0] and "check TETHER_DATABASE_URL" in err[0]


def test_missing_environment_is_a_usage_error(monkeypatch, capsys):
    for name in ("TETHER_DATABASE_URL", "TETHER_CONFIG_DIR", "TETHER_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    assert cli.main(["status"]) == cli.EXIT_USAGE
    assert capsys.readouterr().err.startswith("tether: set TETHER_DATABASE_URL, TETHER_CONFIG_DIR, TETHER_DATA_DIR")


def test_unknown_job_is_a_usage_error(deployment, tmp_path, monkeypatch, capsys):
    for k, v in write_new_keys(tmp_path / "keys").items():
        monkeypatch.setenv(k, v)
    assert cli.main(["run", "--job", "no_such_job"]) == cli.EXIT_USAGE
    assert "there is no job 'no_such_job'; the jobs are full_refresh" in capsys.readouterr().err


# --- tether demo --dir ---------------------------------------------------------------------------

def test_demo_refuses_a_folder_it_did_not_create(tmp_path, capsys):
    folder = tmp_path / "precious"
    folder.mkdir()
    (folder / "report.docx").write_text("not the demo's")
    assert cli.main(["demo", "--dir", str(folder), "--schools", "1", "--pupils", "10"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "was not made by `tether demo`" in err[0]
    assert sorted(p.name for p in folder.iterdir()) == ["report.docx"]
    assert (folder / "report.docx").read_text() == "not the demo's"


def test_demo_replaces_only_a_folder_it_marked(tmp_path):
    folder = tmp_path / "demo"
    cli.prepare_demo_dir(folder)                      # new: made and marked
    assert (folder / cli.DEMO_MARKER).is_file()
    (folder / "old_run.sqlite").write_text("x")
    cli.prepare_demo_dir(folder)                      # marked: replaced
    assert sorted(p.name for p in folder.iterdir()) == [cli.DEMO_MARKER]
    empty = tmp_path / "empty"
    empty.mkdir()
    cli.prepare_demo_dir(empty)                       # empty: used
    assert (empty / cli.DEMO_MARKER).is_file()
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    with pytest.raises(cli.UsageError, match="not a folder"):
        cli.prepare_demo_dir(a_file)


# --- progress -----------------------------------------------------------------------------------

def test_progress_is_live_on_a_terminal_and_plain_elsewhere(monkeypatch):
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    plain = io.StringIO()
    with StepDisplay("full_refresh", 2, plain) as display:
        display.started("landing/a")
        display.finished("landing/a", True)
        display.finished("staged/a", False)
    assert not display.live
    assert [line.split("] ")[-1] for line in plain.getvalue().splitlines()[:2]] == ["landing/a: done", "staged/a: FAILED"]
    assert "2 of 2 steps ran" in plain.getvalue() and "1 failed" in plain.getvalue()

    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    terminal = io.StringIO()
    with StepDisplay("full_refresh", 2, terminal) as display:
        display.started("landing/a")
        display.finished("landing/a", True)
        display.finished("staged/a", False)
    assert display.live
    text = terminal.getvalue()
    assert "staged/a: FAILED" in text and "landing/a: done" not in text     # the bar shows done steps
