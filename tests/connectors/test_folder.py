"""A landing folder offers only complete files: marked done, or unchanged long enough."""
from __future__ import annotations

import os

import pytest

from connectors.folder import complete_files

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
