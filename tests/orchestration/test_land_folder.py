"""Landing a folder source accounts for every file in it: landed, or named in the figures and in
`tether status` with why it was not landed."""
from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from connectors.store_setup import init_store
from orchestration import stages
from orchestration.resources import TetherContext
from orchestration.summary import collect, render
from schemas import tables as t
from sharing.keys import write_new_keys

REGISTER = (b"Adno,UPN,Legal Surname,Legal Forename,DOB,Gender,Reg Group,Date,Session,Mark,Minutes Late\r\n"
            b"1,X,S,F,01/01/2015,F,5A,02/11/2026,AM,/,\r\n")


def _context(tmp_path: Path, monkeypatch) -> TetherContext:
    for k, v in write_new_keys(tmp_path / "keys").items():
        monkeypatch.setenv(k, v)
    config = tmp_path / "config"
    config.mkdir()
    (tmp_path / "inbox").mkdir()
    (config / "sources.toml").write_text("""
[sources.school]
transport = "folder"
path = "inbox"
in_flight_stale_seconds = 3600
[[sources.school.files]]
pattern = "*_attendance_*.csv"
layout = "mis-a"
""")
    url = f"sqlite:///{tmp_path / 'tether.sqlite'}"
    init_store(url)[0].dispose()
    return TetherContext(url, str(config), str(tmp_path / "data"))


def _put(folder: Path, name: str, data: bytes = b"x", age: float = 0) -> None:
    (folder / name).write_bytes(data)
    if age:
        when = dt.datetime.now().timestamp() - age
        os.utime(folder / name, (when, when))


def test_every_file_is_landed_or_reported_by_name_in_the_figures_and_the_status(tmp_path, monkeypatch):
    ctx = _context(tmp_path, monkeypatch)
    source = ctx.config.sources["school"]
    inbox = tmp_path / "inbox"
    _put(inbox, "8881234_attendance_20261102.csv", REGISTER)
    _put(inbox, "readme.txt")
    _put(inbox, ".8881234_attendance_20261103.csv")
    _put(inbox, "..%2f..%2fetc_attendance_20261102.csv")
    _put(inbox, "8881234_attendance_20261104.csv.part")
    _put(inbox, "8881234_attendance_20261001.csv.filepart", age=7200)
    _put(inbox, "8881234_attendance\r_20261105.csv")

    figures = stages.land_source(ctx, source)

    assert figures["files_in_folder"] == 7
    assert figures["files_new"] == 1 and figures["files_already_landed"] == 0
    assert (figures["files_refused"], figures["files_unmatched"], figures["files_in_flight"],
            figures["files_stale_in_flight"]) == (2, 1, 2, 1)
    assert figures["files_new"] + figures["files_not_landed"] == figures["files_in_folder"]
    named = "\n".join(figures["files_not_landed_by_name"])
    for shown in ("'readme.txt'", "'.8881234_attendance_20261103.csv'", "'..%2f..%2fetc_attendance_20261102.csv'",
                  "'8881234_attendance_20261104.csv.part'", "'8881234_attendance_20261001.csv.filepart'",
                  "'8881234_attendance\\r_20261105.csv'"):
        assert shown in named
    assert "\r" not in named

    listed = {r["file_name"]: r for r in ctx.store.records(t.unlanded_files)}
    assert len(listed) == 6
    status = render(collect(ctx.store, ctx.config, ctx.as_of))
    assert "Files in source folders not landed: 6" in status
    assert "STALE IN FLIGHT" in status and "'8881234_attendance\\r_20261105.csv'" in status
    assert "\r" not in status
    attention = {a["kind"] for a in collect(ctx.store, ctx.config, ctx.as_of)["attention"]}
    assert {"file_refused", "file_stale_in_flight"} <= attention     # `tether status` exits 1

    # The upload finishes (renamed into place) and the trick file is removed: both drop off the
    # list; the others keep the time they were first seen.
    first_seen = listed["'readme.txt'"]["first_seen_at"]
    (inbox / "8881234_attendance_20261104.csv.part").rename(inbox / "8881234_attendance_20261104.csv")
    (inbox / "..%2f..%2fetc_attendance_20261102.csv").unlink()
    again = stages.land_source(ctx, source)
    assert again["files_new"] == 1 and again["files_already_landed"] == 1 and again["files_not_landed"] == 4
    listed = {r["file_name"]: r for r in ctx.store.records(t.unlanded_files)}
    assert set(listed) == {"'readme.txt'", "'.8881234_attendance_20261103.csv'",
                           "'8881234_attendance_20261001.csv.filepart'", "'8881234_attendance\\r_20261105.csv'"}
    assert listed["'readme.txt'"]["first_seen_at"] == first_seen
