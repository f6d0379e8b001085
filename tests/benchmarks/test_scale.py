"""benchmarks/scale.py at a tiny size: the DuckDB reference and Tether agree on every pupil, and the
agreement check and the reference would notice if they did not."""
from __future__ import annotations

import datetime as dt
import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest

from transforms.pseudonymise import pupil_ref

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "scale.py"


@pytest.fixture(scope="module")
def scale():
    spec = importlib.util.spec_from_file_location("benchmarks_scale", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_a_tiny_la_agrees_with_the_reference_after_the_full_recompute_the_next_day_and_a_tick(scale, tmp_path):
    result = scale.run_benchmark(tmp_path, schools=3, pupils=60, days=10)
    assert result.la.marks == 60 * 10 * 2
    assert result.la.rows == result.la.marks + result.la.correction_rows
    assert result.disagreeing == {"full recompute": 0, "intraday tick": 0}
    assert result.enrolments == {"full recompute": 60, "intraday tick": 60}
    phases = {f.phase for f in result.figures}
    assert phases == {"full recompute", "next school day", "intraday tick"}
    staged = [f for f in result.figures if f.stage.startswith("stage")]
    assert all(f.note == "0 quarantined" for f in staged)
    assert staged[0].rows >= result.la.rows and staged[2].rows == result.la.held_rows["tick"]
    lines = scale.report(result, "sqlite")
    assert "agreement after full recompute: 0 of 60 pupils disagree with the reference" in lines


def _frames():
    key = bytes(32)
    expected = pd.DataFrame({"laestab": ["8862001", "8862001"], "adno": ["001001", "001002"],
                             "possible": [20, 20], "absence": [2, 1],
                             "persistent_absence": [True, False], "severe_absence": [False, False]})
    tether = pd.DataFrame({"laestab": ["8862001", "8862001"],
                           "pupil_ref": [pupil_ref(key, "8862001", "001001"), pupil_ref(key, "8862001", "001002")],
                           "possible": [20, 20], "absence": [2, 1],
                           "persistent_absence": [True, False], "severe_absence": [False, False]})
    return key, expected, tether


def test_the_agreement_check_counts_a_pupil_whose_figures_differ_or_who_is_missing(scale):
    key, expected, tether = _frames()
    assert scale.disagreements(expected, tether, key).empty
    assert len(scale.disagreements(expected, tether.assign(absence=[2, 2]), key)) == 1
    assert len(scale.disagreements(expected, tether.assign(persistent_absence=[False, False]), key)) == 1
    assert len(scale.disagreements(expected, tether.iloc[:1], key)) == 1
    assert len(scale.disagreements(expected.iloc[:1], tether, key)) == 1


def test_reference_takes_each_sessions_latest_file_and_leaves_not_possible_sessions_out(scale, tmp_path):
    header = "Adno,UPN,Legal Surname,Legal Forename,DOB,Gender,Reg Group,Date,Session,Mark,Minutes Late\r\n"
    who = "001001,,Zoë,Müller,01/01/2018,F,3A"
    files = {
        "8862001_attendance_20260903.csv": [f"{who},03/09/2026,AM,N,", f"{who},03/09/2026,PM,\\,"],
        "8862001_attendance_20260904.csv": [f"{who},04/09/2026,AM,#,", f"{who},04/09/2026,PM,#,",
                                            f"{who},03/09/2026,AM,I,"],
        "8862001_attendance_20260907T0930.csv": [f"{who},07/09/2026,AM,O,"],
        "8862001_attendance_20260907.csv": [f"{who},07/09/2026,AM,/,", f"{who},07/09/2026,PM,Y2,"],
    }
    for name, rows in files.items():
        (tmp_path / name).write_bytes((header + "".join(r + "\r\n" for r in rows)).encode("cp1252"))
    out, _threads = scale.reference(tmp_path, dt.date(2026, 8, 1), dt.date(2026, 9, 7))
    (row,) = out.to_dict("records")
    # 03/09 AM I (the N corrected the next day), PM present; 04/09 closed (#); 07/09 AM present
    # (the nightly file is later than the 09:30 one), PM Y2 (travel disruption: not possible)
    assert (row["possible"], row["absence"]) == (3, 1)
    assert row["persistent_absence"] and not row["severe_absence"]
