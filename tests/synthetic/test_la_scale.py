"""The LA-scale generator (synthetic.la_scale) writes layout-A files Tether reads without a problem."""
from __future__ import annotations

import numpy as np
import pytest

from schemas.config import load_config
from synthetic.la_scale import CODES, generate_scale_la, upn_check_letters
from synthetic.people import is_valid_upn
from transforms.read import read_layout


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return generate_scale_la(tmp_path_factory.mktemp("scale") / "la", n_schools=3, n_pupils=60, n_days=10, seed=5)


def test_every_pupil_has_both_sessions_of_every_day_in_one_file_per_school_per_day(tiny):
    files = sorted(tiny.attendance_dir.glob("*_attendance_*.csv"))
    assert len(files) == tiny.files == 3 * 10
    assert {f.name[:7] for f in files} == {s.laestab for s in tiny.schools}
    rows = [line for f in files for line in f.read_bytes().decode("cp1252").splitlines()[1:]]
    assert len(rows) == tiny.rows == tiny.marks + tiny.correction_rows
    assert tiny.marks == 60 * 10 * 2
    sessions = {(f.name[:7], *r.split(",")[0:1], *r.split(",")[7:9]) for f in files
                for r in f.read_bytes().decode("cp1252").splitlines()[1:]}
    assert len(sessions) == tiny.marks      # corrections re-send sessions already sent


def test_held_files_are_the_next_day_for_every_school_and_one_intraday_morning(tiny):
    assert len(tiny.held_files["day"]) == 3
    assert all(p.name.endswith(f"_attendance_{tiny.extra_day:%Y%m%d}.csv") for p in tiny.held_files["day"])
    (tick,) = tiny.held_files["tick"]
    assert tick.name == f"{tiny.tick_school}_attendance_{tiny.tick_day:%Y%m%d}T0930.csv"
    lines = tick.read_bytes().decode("cp1252").splitlines()[1:]
    assert len(lines) == tiny.held_rows["tick"] and {line.split(",")[8] for line in lines} == {"AM"}
    assert tiny.days[-1] < tiny.extra_day < tiny.tick_day


def test_files_read_through_layout_a_with_nothing_to_quarantine(tiny):
    config = load_config(tiny.config_dir)
    layout = config.layout("mis-a")
    for path in sorted(tiny.attendance_dir.glob("*.csv"))[:6]:
        assert layout.parse_filename(path.name)["laestab"] == path.name[:7]
        read = read_layout(path.read_bytes(), layout, config.codes)
        assert read.file_error is None and not read.quarantined and not read.issues
        assert set(read.frame["mark"]) <= set(CODES)


def test_upns_are_valid_and_unique(tiny):
    path = next(tiny.attendance_dir.glob("*.csv"))
    upns = {line.split(",")[1] for line in path.read_bytes().decode("cp1252").splitlines()[1:]}
    assert upns and all(is_valid_upn(u) for u in upns)


def test_check_letters_are_the_dfe_ones():
    body = np.array([[int(c) for c in "801200005001"]])
    assert upn_check_letters(body).tolist() == [b"B"]       # B801200005001 (DOMAIN.md)


def test_the_same_seed_writes_the_same_bytes(tmp_path, tiny):
    again = generate_scale_la(tmp_path / "la", n_schools=3, n_pupils=60, n_days=10, seed=5)
    for path in sorted(tiny.attendance_dir.glob("*.csv")):
        assert (again.attendance_dir / path.name).read_bytes() == path.read_bytes()


def test_more_days_than_the_calendar_holds_is_refused(tmp_path):
    with pytest.raises(ValueError, match="at most 191 days"):
        generate_scale_la(tmp_path / "la", n_schools=1, n_pupils=5, n_days=192)
