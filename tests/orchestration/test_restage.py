"""Re-staging, the parts without a pipeline: which files are chosen, the landing bookkeeping on both
engines, the Dagster job per source and the CLI's options. tests/integration/test_restage.py runs it."""
from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from connectors.landing import Landing, refused_whole
from orchestration import cli
from orchestration.definitions import build_definitions
from orchestration.stages import select_files
from schemas import tables as t
from schemas.config import load_config

AT = dt.datetime(2026, 11, 30, 9, tzinfo=dt.timezone.utc)
LATER = AT + dt.timedelta(hours=1)


def _entry(file_id, name, status, read=None, staged=None):
    return {"file_id": file_id, "file_name": name, "status": status, "rows_read": read, "rows_staged": staged}


def test_by_default_only_failed_or_wholly_quarantined_files_are_re_read():
    assert refused_whole(_entry("a", "x.csv", "failed"))
    assert refused_whole(_entry("a", "x.csv", "staged", 4, 0))
    assert not refused_whole(_entry("a", "x.csv", "staged", 4, 3))
    assert not refused_whole(_entry("a", "x.csv", "staged", 0, 0))      # an empty file has nothing to re-read
    assert not refused_whole(_entry("a", "x.csv", "landed"))


def test_file_selects_by_name_glob_any_case_or_file_id_prefix():
    entries = [_entry("ab12" + "0" * 60, "8864003_attendance_20261127.csv", "failed"),
               _entry("cd34" + "0" * 60, "8864003_attendance_20261126.csv", "staged", 4, 4),
               _entry("ef56" + "0" * 60, "8864001_attendance_20261127.csv", "staged", 4, 4)]
    names = lambda f: [e["file_name"] for e in select_files(entries, f)]
    assert names("8864003_attendance_20261126.csv") == ["8864003_attendance_20261126.csv"]
    assert names("*_20261127.CSV") == ["8864003_attendance_20261127.csv", "8864001_attendance_20261127.csv"]
    assert names("cd3") == ["8864003_attendance_20261126.csv"]
    assert names("nothing*") == []


@pytest.fixture
def landing(store, tmp_path):
    return Landing(tmp_path / "landing", store, os.urandom(32))


def test_superseded_findings_are_kept_and_no_longer_block_the_same_finding(landing):
    f = landing.receive("school_mis_a", "8864003_attendance_20261127.csv", b"Adno,Mark\n1,/\n", layout="mis-a",
                        received_at=AT)
    rows = [{"row_number": None, "field": None, "reason": "missing required column 'Mark'", "raw": b"x"},
            {"row_number": 1, "field": None, "reason": "file not read: missing required column 'Mark'", "raw": b"y"}]
    assert landing.quarantine(source_id="school_mis_a", file_id=f.file_id, file_name=f.file_name, rows=rows, at=AT) == 2
    landing.record_issues(source_id="school_mis_a", file_id=f.file_id, file_name=f.file_name,
                          issues=[{"row_number": 1, "field": "dob", "issue": "placeholder"}], at=AT)
    landing.mark_staged(f.file_id, rows_read=1, rows_staged=0, rows_quarantined=1, at=AT)
    landing.mark_failed(f.file_id, "missing required column 'Mark'")

    gone = landing.supersede(f.file_id, keep_quarantine=lambda r: r["row_number"] == 1,
                             keep_issues=lambda i: False, at=LATER)
    assert gone == (1, 1)
    q = landing.store.read(t.quarantine)
    assert len(q) == 2 and q["superseded_at"].notna().sum() == 1          # kept, marked
    assert [r["row_number"] for r in landing.in_force(t.quarantine, f.file_id)] == [1]
    assert landing.in_force(t.data_quality_issues, f.file_id) == []
    # the superseded finding, found again, is in force again as a new row; the kept one is not doubled
    assert landing.quarantine(source_id="school_mis_a", file_id=f.file_id, file_name=f.file_name, rows=rows,
                              at=LATER) == 1
    assert len(landing.in_force(t.quarantine, f.file_id)) == 2

    assert landing.mark_restaged(f.file_id, status="staged", layout="mis-a-renamed", rows_read=1, rows_staged=1,
                                 rows_quarantined=0, error=None, at=LATER)
    e = landing.entry(f.file_id)
    assert (e["status"], e["layout"], e["rows_staged"], e["error"]) == ("staged", "mis-a-renamed", 1, None)
    assert e["restaged_at"] == LATER and e["staged_at"] == LATER
    # the same reading again writes nothing, not even the time
    assert not landing.mark_restaged(f.file_id, status="staged", layout="mis-a-renamed", rows_read=1, rows_staged=1,
                                     rows_quarantined=0, error=None, at=LATER + dt.timedelta(hours=1))
    assert landing.entry(f.file_id)["restaged_at"] == LATER
    assert [e["file_id"] for e in landing.read_through("school_mis_a")] == [f.file_id]
    assert landing.restageable("school_mis_a") == []


SOURCES_TOML = """
[sources.school_mis_a]
path = "inbox/school_mis_a"
[[sources.school_mis_a.files]]
pattern = "*_attendance_*.csv"
layout = "mis-a"

[sources.camhs]
path = "inbox/camhs"
[[sources.camhs.files]]
pattern = "camhs_referrals_*.csv"
layout = "camhs-referrals"
"""


def test_the_ui_has_a_restage_job_per_source_that_re_reads_then_refreshes(tmp_path: Path):
    (tmp_path / "sources.toml").write_text(SOURCES_TOML)
    defs = build_definitions(load_config(tmp_path))
    for sid in ("school_mis_a", "camhs"):
        job = defs.resolve_job_def(f"restage_{sid}")
        assert "re-read" in job.description and "superseded" in job.description
        ops = job.run_config_schema.config_type.fields["ops"].config_type.fields
        assert f"landing__{sid}" not in ops                           # nothing new is fetched
        assert {f"staged__{sid}", "linked__child_links", "signals__attendance_measures"} <= set(ops)
        assert job.run_config == {"ops": {f"staged__{sid}": {"config": {"restage": True, "file": ""}}}}
        fields = ops[f"staged__{sid}"].config_type.fields["config"].config_type.fields
        assert fields["restage"].description and fields["file"].description     # shown in the launchpad
    graph = defs.resolve_asset_graph()
    assert "restage" in graph.get(__import__("dagster").AssetKey(["staged", "camhs"])).description


def test_every_restage_option_has_help(capsys):
    with pytest.raises(SystemExit):
        cli.main(["restage", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option, words in (("--source", "source id"), ("--file", "file_id prefix"),
                          ("--no-refresh", "record_refresh"), ("--json", "JSON")):
        assert option in text and words in text
