"""Re-staging: after a layout fix, landed files that were refused whole are read again, without the
school sending them again, and the old failure is superseded (kept in the store, no longer counted).

The deployment is the folder-based LA of test_bad_input (no services needed). School BAD_A's
export renamed its `Mark` column to `Attendance Mark`, so layout mis-a refuses every file of it
whole ("missing required column 'Mark'"). The operator then adds a layout for that school's export
in the configuration folder and runs `tether restage`.
"""
from __future__ import annotations

import io
from importlib import resources

import pandas as pd
import pytest

from orchestration import cli, stages
from orchestration.runner import run_job
from orchestration.summary import collect
from schemas import tables as t
from synthetic.writers import MIS_A_ATTENDANCE
from tests.integration.test_bad_input import (
    BAD_A, C1, C2, GOOD_A, STAMP, csv_bytes, make_deployment, mis_a_row, mis_a_rows,
)
from transforms.pseudonymise import pupil_ref

pytestmark = pytest.mark.integration

RENAMED = ["Attendance Mark" if h == "Mark" else h for h in MIS_A_ATTENDANCE]
FIRST = f"{BAD_A}_attendance_{STAMP}.csv"          # 4 rows, one with an unknown code (Q9)
SECOND = f"{BAD_A}_attendance_20261126.csv"        # 4 clean rows of the day before
OLD_REASON = "missing required column 'Mark'"


def renamed_export(rows: list[list[str]]) -> bytes:
    return csv_bytes(RENAMED, rows, encoding="cp1252", crlf=True)


def put_renamed_files(dep) -> None:
    first = mis_a_rows(C1, C2)
    first[3][9] = "Q9"
    dep.put("school_mis_a", FIRST, renamed_export(first))
    dep.put("school_mis_a", SECOND, renamed_export(
        [mis_a_row(c, s, "/", day="26/11/2026") for c in (C1, C2) for s in ("AM", "PM")]))


def fix_layout(dep, column: str = "Attendance Mark") -> None:
    """What the operator does: a layout for this school's export, named in sources.toml before the
    general pattern (the first matching pattern wins)."""
    config = dep.root / "config"
    builtin = resources.files("schemas").joinpath("defaults/layouts/mis-a.toml").read_text("utf-8")
    layouts = config / "layouts"
    layouts.mkdir(exist_ok=True)
    (layouts / "mis-a-renamed.toml").write_text(builtin.replace('mark = "Mark"', f'mark = "{column}"'), "utf-8")
    sources = (config / "sources.toml").read_text("utf-8")
    if "mis-a-renamed" not in sources:
        general = '[[sources.school_mis_a.files]]\npattern = "*_attendance_*.csv"'
        block = f'[[sources.school_mis_a.files]]\npattern = "{BAD_A}_attendance_*.csv"\nlayout = "mis-a-renamed"\n\n'
        (config / "sources.toml").write_text(sources.replace(general, block + general, 1), "utf-8")
    dep.ctx.__dict__.pop("config", None)          # the next stage reads the configuration afresh


def snapshot(dep) -> dict:
    """The data of the tables re-staging touches (not the contract check's own bookkeeping)."""
    store = dep.ctx.store
    return {table.name: store.read(table).drop(columns=["identity_enc", "contract_checked_at"], errors="ignore")
            for table in (t.landing_manifest, t.quarantine, t.data_quality_issues, t.staged_marks, t.staged_pupils)}


def assert_same(before: dict, after: dict) -> None:
    for name in before:
        pd.testing.assert_frame_equal(before[name], after[name], obj=name)


def quarantine_of(dep, name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(in force, superseded) quarantine rows of a file."""
    q = dep.quarantined(name)
    return q[q["superseded_at"].isna()], q[q["superseded_at"].notna()]


@pytest.fixture
def dep(tmp_path, monkeypatch):
    deployment = make_deployment(tmp_path, monkeypatch)
    put_renamed_files(deployment)
    yield deployment
    deployment.ctx.store.dispose()


def test_restage_after_a_layout_fix_stages_the_files_and_supersedes_the_old_failure(dep, capsys):
    assert run_job("full_refresh", stream=io.StringIO()).success
    for name in (FIRST, SECOND):
        e = dep.entry(name)
        assert (e["status"], e["rows_read"], e["rows_staged"], e["rows_quarantined"]) == ("failed", 4, 0, 4)
        assert e["error"].startswith(OLD_REASON)
    assert dep.marks(BAD_A).empty
    reasons = {r["reason"] for r in collect(dep.ctx.store, dep.ctx.config, dep.ctx.as_of)["quarantine_reasons"]}
    assert OLD_REASON in reasons

    fix_layout(dep)
    capsys.readouterr()
    assert cli.main(["restage", "--source", "school_mis_a"]) == 0
    out = capsys.readouterr().out
    assert "2 file(s) re-read, 2 now staged, 0 still failed" in out
    assert FIRST in out and SECOND in out and "failed -> staged" in out
    assert "Rows now staged: 7 (7 newly); still quarantined: 1; old quarantine rows superseded: 10" in out

    # the manifest holds the new reading; the old error text is kept in the superseded rows
    for name, counts in ((FIRST, (4, 3, 1)), (SECOND, (4, 4, 0))):
        e = dep.entry(name)
        assert (e["status"], e["rows_read"], e["rows_staged"], e["rows_quarantined"]) == ("staged", *counts)
        assert e["rows_read"] == e["rows_staged"] + e["rows_quarantined"]
        assert e["error"] is None and e["layout"] == "mis-a-renamed" and pd.notna(e["restaged_at"])
        in_force, superseded = quarantine_of(dep, name)
        assert len(superseded) == 5 and all(OLD_REASON in r for r in superseded["reason"])
        assert superseded["row_number"].isna().sum() == 1            # the whole-file row, kept
    in_force, _ = quarantine_of(dep, FIRST)
    assert list(in_force["row_number"]) == [4] and "Q9" in in_force["reason"].iloc[0]
    assert quarantine_of(dep, SECOND)[0].empty

    # the marks are staged, exactly the rows read minus the one quarantined
    marks = dep.marks(BAD_A)
    ids = {dep.entry(n)["file_id"]: n for n in (FIRST, SECOND)}
    assert sorted(marks["file_id"].map(ids).value_counts().items()) == [(SECOND, 4), (FIRST, 3)]
    assert set(marks["session_date"].astype(str)) == {"2026-11-26", "2026-11-27"}

    # every count is of rows in force: the summary, the reconciliation, the record
    summary = collect(dep.ctx.store, dep.ctx.config, dep.ctx.as_of)
    assert not [r for r in summary["quarantine_reasons"] if "missing required column" in r["reason"]]
    feed = next(f for f in summary["feeds"] if f["layout"] == "mis-a-renamed")
    assert (feed["files"], feed["failed"], feed["rows_read"], feed["rows_staged"], feed["rows_quarantined"],
            feed["restaged"]) == (2, 0, 8, 7, 1, 2)
    assert summary["superseded_by_restaging"] == {"quarantine_rows": 10, "files": 2}
    dep.assert_good_files_loaded()
    dep.assert_every_file_reconciles()
    dep.assert_no_identity_anywhere()
    refs = {pupil_ref(dep.ctx.keys.token_key, BAD_A, c.ref) for c in (C1, C2)}
    measures = dep.ctx.store.read(t.attendance_measures)          # the CLI refreshed the record
    assert refs <= set(measures["pupil_ref"])

    # restaging again changes nothing: from the CLI, and from the Dagster UI's restage job
    before = snapshot(dep)
    assert cli.main(["restage", "--source", "school_mis_a"]) == 0
    assert "nothing to re-stage" in capsys.readouterr().err
    result = run_job("restage_school_mis_a", stream=io.StringIO())
    assert result.success
    checks = {e.event_specific_data.check_name: e.event_specific_data for e in result.all_events
              if e.event_type_value == "ASSET_CHECK_EVALUATION"}
    reconcile = checks["rows_reconcile"]
    assert reconcile.passed
    meta = {k: v.value for k, v in reconcile.metadata.items()}
    assert meta["quarantine_rows_superseded_by_restaging"] == 10 and meta["files_failed"] == 0
    assert meta["files_restaged"] == 2
    staged = [e for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"
              and e.asset_key.path == ["staged", "school_mis_a"]]
    assert staged and staged[0].event_specific_data.materialization.metadata["files_reread"].value == 0
    assert_same(before, snapshot(dep))


def test_restage_file_selects_by_name_glob_or_file_id_and_a_file_that_still_fails_stays_failed(dep, capsys):
    dep.load()
    first_id, second_id = dep.entry(FIRST)["file_id"], dep.entry(SECOND)["file_id"]

    # a wrong fix: the file is read under it and still fails, with the new reason
    fix_layout(dep, column="Mark Code")
    assert cli.main(["restage", "--source", "school_mis_a", "--file", FIRST, "--no-refresh"]) == 0
    out = capsys.readouterr().out
    assert "1 file(s) re-read, 0 now staged, 1 still failed" in out and SECOND not in out
    e = dep.entry(FIRST)
    assert e["status"] == "failed" and e["error"].startswith("missing required column 'Mark Code'")
    in_force, superseded = quarantine_of(dep, FIRST)
    assert all("'Mark Code'" in r for r in in_force["reason"]) and len(in_force) == 5
    assert len(superseded) == 5 and all(OLD_REASON in r for r in superseded["reason"])
    untouched = dep.entry(SECOND)                                  # not named: not re-read
    assert untouched["error"].startswith(OLD_REASON) and pd.isna(untouched["restaged_at"])
    before = snapshot(dep)
    stages.restage_source(dep.ctx, dep.ctx.config.sources["school_mis_a"], FIRST)
    assert_same(before, snapshot(dep))                             # the same failure again: nothing changes

    # the right fix; one file named by a file_id prefix
    fix_layout(dep)
    (dep.root / "config" / "layouts" / "mis-a-renamed.toml").write_text(
        (dep.root / "config" / "layouts" / "mis-a-renamed.toml").read_text().replace('"Mark Code"', '"Attendance Mark"'))
    dep.ctx.__dict__.pop("config", None)
    assert cli.main(["restage", "--source", "school_mis_a", "--file", second_id[:10], "--no-refresh"]) == 0
    assert dep.entry(SECOND)["status"] == "staged" and dep.entry(FIRST)["status"] == "failed"

    # a glob: it also names the good file of another school, re-read and unchanged
    capsys.readouterr()
    assert cli.main(["restage", "--source", "school_mis_a", "--file", f"*_attendance_{STAMP}.csv", "--no-refresh"]) == 0
    out = capsys.readouterr().out
    assert "2 file(s) re-read, 2 now staged" in out
    assert f"{GOOD_A}_attendance_{STAMP}.csv" in out and "staged -> staged" in out and "unchanged" in out
    e = dep.entry(FIRST)
    assert (e["status"], e["rows_read"], e["rows_staged"], e["rows_quarantined"]) == ("staged", 4, 3, 1)
    assert len(quarantine_of(dep, FIRST)[1]) == 10                 # both earlier failures kept

    # by default only failed / wholly quarantined files are re-read: a staged file with one bad row is not
    assert cli.main(["restage", "--source", "school_mis_a", "--no-refresh"]) == 0
    assert "nothing to re-stage" in capsys.readouterr().err

    # ... but --file may name it: once Q9 is a known code its row is newly staged, its old row superseded
    codes = dep.root / "config" / "attendance_codes.toml"
    codes.write_text('[codes.Q9]\ncategory = "present"\nmeaning = "Test code"\n', "utf-8")
    dep.ctx.__dict__.pop("config", None)
    figures = stages.restage_source(dep.ctx, dep.ctx.config.sources["school_mis_a"], first_id[:12])
    assert (figures["files_reread"], figures["rows_newly_staged"], figures["quarantine_rows_superseded"]) == (1, 1, 1)
    e = dep.entry(FIRST)
    assert (e["status"], e["rows_read"], e["rows_staged"], e["rows_quarantined"]) == ("staged", 4, 4, 0)
    in_force, superseded = quarantine_of(dep, FIRST)
    assert in_force.empty and superseded["reason"].str.contains("Q9").sum() == 1
    assert len(dep.marks(BAD_A)) == 8
    dep.assert_every_file_reconciles()

    # a --file that names nothing says so and fails
    assert cli.main(["restage", "--source", "school_mis_a", "--file", "nothing_like_this*.csv"]) == 1
    assert "matches 'nothing_like_this*.csv'" in capsys.readouterr().err
    assert cli.main(["restage", "--source", "no_such_source"]) == 2


def test_rows_staged_before_but_refused_by_the_new_reading_leave_the_store(dep):
    dep.load()
    fix_layout(dep)
    stages.restage_source(dep.ctx, dep.ctx.config.sources["school_mis_a"], SECOND)
    second_id = dep.entry(SECOND)["file_id"]
    assert len(dep.marks(BAD_A)) == 4
    pupils = dep.ctx.store.read(t.staged_pupils)
    assert (pupils["file_id"] == second_id).sum() == 2

    # a wrong date format: every row of the file is now quarantined, so its marks and roll leave the store
    layout = dep.root / "config" / "layouts" / "mis-a-renamed.toml"
    good = layout.read_text()
    layout.write_text(good.replace('date_format = "%d/%m/%Y"', 'date_format = "%Y-%m-%d"'))
    dep.ctx.__dict__.pop("config", None)
    figures = stages.restage_source(dep.ctx, dep.ctx.config.sources["school_mis_a"], SECOND)
    assert figures["staged_rows_removed"] == 6                    # 4 marks and the roll of 2 pupils
    e = dep.entry(SECOND)
    assert (e["status"], e["rows_read"], e["rows_staged"], e["rows_quarantined"]) == ("staged", 4, 0, 4)
    assert dep.marks(BAD_A).empty
    pupils = dep.ctx.store.read(t.staged_pupils)
    assert not (pupils["file_id"] == second_id).any()
    dep.assert_every_file_reconciles()

    # wholly quarantined, so a plain restage (no --file) re-reads it once the layout is right again
    layout.write_text(good)
    dep.ctx.__dict__.pop("config", None)
    figures = stages.restage_source(dep.ctx, dep.ctx.config.sources["school_mis_a"])
    assert {f["file_name"] for f in figures["files"]} == {FIRST, SECOND}
    assert dep.entry(SECOND)["rows_staged"] == 4 and len(dep.marks(BAD_A)) == 7
    in_force, superseded = quarantine_of(dep, SECOND)
    assert in_force.empty and len(superseded) == 5 + 4
    dep.assert_every_file_reconciles()
