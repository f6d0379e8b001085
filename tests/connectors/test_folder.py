"""A landing folder offers only complete files: marked done, or unchanged long enough."""
from __future__ import annotations

import os

import pytest

from connectors.arrivals import figures, shown_name
from connectors.folder import complete_files, survey_folder

NOW = 1_800_000_000.0


def _put(folder, name, *, age: float, data: bytes = b"x"):
    path = folder / name
    path.write_bytes(data)
    os.utime(path, (NOW - age, NOW - age))
    return path


def test_a_file_is_complete_once_unchanged_for_the_stable_time(tmp_path):
    _put(tmp_path, "b.csv", age=120)
    _put(tmp_path, "a.csv", age=60)   # exactly the stable time: complete
    _put(tmp_path, "c.csv", age=5)    # still being written
    got = complete_files(tmp_path, ["*.csv"], stable_seconds=60, now=NOW)
    assert [p.name for p in got] == ["a.csv", "b.csv"]


def test_a_done_companion_makes_a_file_complete_at_once(tmp_path):
    _put(tmp_path, "reg.csv", age=0)
    assert complete_files(tmp_path, ["*.csv"], stable_seconds=300, now=NOW) == []
    _put(tmp_path, "reg.csv.done", age=0, data=b"")
    assert complete_files(tmp_path, ["*.csv"], stable_seconds=300, now=NOW) == [tmp_path / "reg.csv"]


def test_without_a_stable_time_every_matching_file_is_complete(tmp_path):
    _put(tmp_path, "x.csv", age=0)
    assert complete_files(tmp_path, ["*.csv"], now=NOW) == [tmp_path / "x.csv"]


def test_hidden_partial_and_marker_files_are_never_offered(tmp_path):
    for name in (".hidden.csv", "upload.csv.part", "upload.csv.tmp", "old.csv.done", "Z.TMP"):
        _put(tmp_path, name, age=3600)
    _put(tmp_path, "ok.csv", age=3600)
    assert [p.name for p in complete_files(tmp_path, ["*"], stable_seconds=10, now=NOW)] == ["ok.csv"]


def test_patterns_choose_files_case_insensitively_and_subfolders_are_ignored(tmp_path):
    _put(tmp_path, "8881234_20260903_0820.CSV", age=100)
    _put(tmp_path, "persons.xml", age=100)
    _put(tmp_path, "notes.txt", age=100)
    (tmp_path / "archive.csv").mkdir()
    got = complete_files(tmp_path, ["*.csv", "persons*.xml"], stable_seconds=10, now=NOW)
    assert [p.name for p in got] == ["8881234_20260903_0820.CSV", "persons.xml"]


def test_a_missing_folder_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        complete_files(tmp_path / "nope", ["*.csv"])


def test_every_file_in_the_folder_is_accounted_for_by_escaped_name(tmp_path):
    _put(tmp_path, "8881234_attendance_20261102.csv", age=3600)          # lands
    _put(tmp_path, "notes.txt", age=3600)                                 # matches no pattern
    _put(tmp_path, ".8881234_attendance_20261107.csv", age=3600)                    # a dot-file a pattern matches
    _put(tmp_path, ".DS_Store", age=3600)                                 # a dot-file no pattern matches
    _put(tmp_path, "..%2f..%2fetc_attendance_20261102.csv", age=3600)     # a path trick
    _put(tmp_path, "8881234_attendance_20261103.csv.part", age=60)        # still uploading
    _put(tmp_path, "8881234_attendance_20261001.csv.filepart", age=3 * 86400)   # abandoned upload
    _put(tmp_path, "8881234_attendance_20261104.csv~", age=60)            # an editor's backup
    _put(tmp_path, "8881234_attendance\x1b[2J_20261105.csv", age=3600)    # a control character
    _put(tmp_path, "8881234_attendance_20261106.csv", age=1)              # not yet stable
    (tmp_path / "archive").mkdir()                                        # a folder: not a file

    survey = survey_folder(tmp_path, ["*_attendance_*.csv"], stable_seconds=30, now=NOW)

    assert [p.name for p in survey.complete] == ["8881234_attendance_20261102.csv"]
    states = {u.name: u.state for u in survey.unlanded}
    assert states == {
        "'notes.txt'": "unmatched",
        "'.8881234_attendance_20261107.csv'": "in_flight",
        "'.DS_Store'": "unmatched",
        "'..%2f..%2fetc_attendance_20261102.csv'": "refused",
        "'8881234_attendance_20261103.csv.part'": "in_flight",
        "'8881234_attendance_20261001.csv.filepart'": "stale_in_flight",
        "'8881234_attendance_20261104.csv~'": "in_flight",
        "'8881234_attendance\\x1b[2J_20261105.csv'": "refused",
        "'8881234_attendance_20261106.csv'": "in_flight",
    }
    assert survey.files_seen == 10                     # every file: one landed, nine reported
    reasons = {u.name: u.reason for u in survey.unlanded}
    assert "contains '..'" in reasons["'..%2f..%2fetc_attendance_20261102.csv'"]
    assert "control character" in reasons["'8881234_attendance\\x1b[2J_20261105.csv'"]
    assert "abandoned" in reasons["'8881234_attendance_20261001.csv.filepart'"]
    assert "leading dot" in reasons["'.8881234_attendance_20261107.csv'"]

    shown = figures(survey.unlanded)
    assert (shown["files_refused"], shown["files_unmatched"], shown["files_in_flight"],
            shown["files_stale_in_flight"], shown["files_not_landed"]) == (2, 2, 4, 1, 9)
    listing = "\n".join(shown["files_not_landed_by_name"])
    assert "\x1b" not in listing and "\\x1b" in listing   # the escape is shown, never sent to a terminal
    assert listing.splitlines()[0].startswith("'..%2f")    # refused first


def test_a_done_marker_is_accounted_for_and_an_orphan_marker_is_reported(tmp_path):
    _put(tmp_path, "reg.csv", age=0)
    _put(tmp_path, "reg.csv.done", age=0, data=b"")
    _put(tmp_path, "gone.csv.done", age=0, data=b"")
    survey = survey_folder(tmp_path, ["*.csv"], stable_seconds=300, now=NOW)
    assert [p.name for p in survey.complete] == ["reg.csv"] and survey.done_markers == 1
    assert [(u.name, u.state) for u in survey.unlanded] == [("'gone.csv.done'", "unmatched")]
    assert survey.files_seen == 3


def test_names_are_shown_escaped_and_bounded():
    assert shown_name("a\tb\u202ec.csv") == "'a\\tb\\u202ec.csv'"    # a tab and a right-to-left override
    assert len(shown_name("x" * 1000)) == 300
