"""After the demo, no pupil's name, date of birth, UPN or NHS number is on disk in plaintext.

The demo runs as a user runs it (`tether demo`, a separate process, its output kept as the log);
then every file Tether wrote — the store (with its WAL), landing copies, quarantine (in the
store), Dagster's storage and logs, the console output — is searched for every identity value
found in the synthetic LA's source files.
"""
from __future__ import annotations

import csv
import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

NAME_COLUMNS = {"Legal Surname", "Legal Forename", "Preferred Surname", "Preferred Forename", "Last Name",
                "First Name", "Forename", "Surname", "GivenName", "FamilyName"}
DOB_COLUMNS = {"DOB", "Date of Birth", "BirthDate"}
ID_COLUMNS = {"UPN", "Former UPN", "NHS Number", "NHSNumber"}
OTHER_DATE_COLUMNS = {"Date", "Session Date", "Admission Date", "Leaving Date", "StartDate", "EndDate",
                      "ReferralReceivedDate", "DischargeDate", "Updated At"}


def _identity_values(inbox: Path) -> tuple[set[str], set[str], set[str]]:
    names, dobs, ids, other_dates = set(), set(), set(), set()
    for path in inbox.rglob("*.csv"):
        raw = path.read_bytes()
        text = raw.decode("utf-8-sig") if raw.startswith(b"\xef\xbb\xbf") or "mis_a" not in str(path) else raw.decode("cp1252")
        for row in csv.DictReader(text.splitlines()):
            for col, value in row.items():
                value = (value or "").strip()
                if not value:
                    continue
                if col in NAME_COLUMNS and len(value) >= 6:
                    names.add(value)
                elif col in ID_COLUMNS and len(value) >= 10:
                    ids.add(value)
                elif col in DOB_COLUMNS:
                    dobs.add(value)
                elif col in OTHER_DATE_COLUMNS:
                    other_dates.add(value[:10])
    # a date of birth is searched in both spellings, unless the same date is also a non-identity date
    spelled = set()
    for d in dobs:
        day = dt.datetime.strptime(d, "%d/%m/%Y").date() if "/" in d else dt.date.fromisoformat(d)
        for text in (day.isoformat(), day.strftime("%d/%m/%Y")):
            if text not in other_dates and day.isoformat() not in other_dates:
                spelled.add(text)
    return names, spelled, ids


def test_no_plaintext_identity_anywhere_tether_wrote(tmp_path):
    demo = tmp_path / "demo"
    dagster_home = tmp_path / "dagster_home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env["DAGSTER_HOME"] = str(dagster_home)
    env["TETHER_DATABASE_URL"] = f"sqlite:///{demo / 'tether.sqlite'}"
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        done = subprocess.run([sys.executable, "-m", "orchestration.cli", "demo", "--dir", str(demo),
                               "--schools", "3", "--pupils", "300"], env=env, stdout=out, stderr=subprocess.STDOUT,
                              timeout=900)
    assert done.returncode == 0, log.read_text()[-3000:]

    names, dobs, ids = _identity_values(demo / "la" / "inbox")
    assert len(names) > 100 and len(dobs) > 100 and len(ids) > 100     # the search has something to find
    # every candidate token in a file is looked up in the identity sets (one pass per file)
    wanted = ids | dobs | {n.encode("utf-8").decode("latin-1") for n in names} | names
    candidates = re.compile(r"\d{2}/\d{2}/\d{4}|\d{4}-\d{2}-\d{2}|[A-Z0-9]{10,13}|"
                            r"[A-Za-z\u00c0-\u00ff][A-Za-z\u00c0-\u00ff'\-]{5,}")

    written = [p for p in demo.rglob("*") if p.is_file() and not p.is_relative_to(demo / "la")
               and not p.is_relative_to(demo / "keys")]
    written += [p for p in dagster_home.rglob("*") if p.is_file()] + [log]
    assert any(p.name == "tether.sqlite" for p in written)
    assert any(p.suffix == ".bin" for p in written)                       # landing copies
    assert any("storage" in p.parts for p in written)                     # Dagster storage
    def leaks(paths):
        out = []
        for path in paths:
            text = path.read_bytes().decode("latin-1")
            found = {m for m in candidates.findall(text) if m in wanted}
            if found:
                out.append((str(path.relative_to(tmp_path)), len(found)))
        return out

    # the search finds a planted leak of each kind, so its silence below means something
    planted = tmp_path / "planted.txt"
    for value in (sorted(names)[0], sorted(dobs)[0], sorted(ids)[0]):
        planted.write_bytes(f"x,{value},y".encode("utf-8"))
        assert leaks([planted]), value
    assert leaks(written) == []
