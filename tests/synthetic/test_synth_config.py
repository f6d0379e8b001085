"""The generated configuration folder loads through schemas.config and describes the generated files."""
from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from schemas.calendar import Term
from schemas.config import load_config
from synthetic.generate import generate_la


def test_config_folder_loads_and_points_at_the_inbox(small_la):
    config = load_config(small_la.config_dir)
    assert set(config.sources) == {"school_mis_a", "school_mis_b", "social_care", "camhs"}
    for source in config.sources.values():
        assert source.transport == "folder" and source.expected_by is not None
        folder = small_la.config_dir.parent / source.options["path"]
        assert folder.is_dir() and any(folder.iterdir())
    layouts = {f.layout for s in config.sources.values() for f in s.files}
    assert layouts == {"mis-a", "mis-a-pupils", "mis-b", "sc-persons", "sc-episodes", "sc-allocations", "camhs-referrals"}
    assert len(config.schools) == small_la.n_schools
    for laestab, school in config.schools.items():
        assert len(laestab) == 7 and laestab.startswith("886") and laestab[3] in "245"
        assert len(school.urn) == 6 and school.expected_by == dt.time(9, 45)
        assert list((small_la.inbox_dir / school.source_id).glob(f"{laestab}_attendance_*.csv"))
    assert sum(s.source_id == "school_mis_b" for s in config.schools.values()) == 1


def test_twelve_school_la_has_two_or_three_layout_b_schools(tmp_path, as_of):
    report = generate_la(tmp_path, seed=2, n_schools=12, n_pupils=240, as_of=as_of)
    schools = load_config(report.config_dir).schools
    assert 2 <= sum(s.source_id == "school_mis_b" for s in schools.values()) <= 3
    phases = {laestab[3] for laestab in schools}
    assert "2" in phases and phases & {"4", "5"}


def test_a_given_calendar_is_used_and_written(tmp_path, as_of):
    base = load_config().calendar
    late_start = dataclasses.replace(base, terms=(Term("autumn", dt.date(2026, 9, 7), dt.date(2026, 12, 18)),))
    messages = []
    report = generate_la(tmp_path, seed=4, n_schools=3, n_pupils=90, as_of=as_of, calendar=late_start,
                         progress=messages.append)
    assert messages and messages[-1].startswith("done")
    written = load_config(report.config_dir).calendar
    assert [t.start for t in written.terms] == [dt.date(2026, 9, 7)]
    firsts = sorted(p.name.split("_")[-1] for p in report.inbox_dir.rglob("*_attendance_*.csv"))
    assert firsts[0] == "20260907.csv"


def test_as_of_must_be_timezone_aware(tmp_path):
    with pytest.raises(ValueError):
        generate_la(tmp_path, n_schools=2, n_pupils=20, as_of=dt.datetime(2026, 11, 30, 9, 45))
