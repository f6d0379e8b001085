"""Landing: bytes kept exactly, encrypted at rest, once per checksum; quarantine encrypted too."""
from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

import pandas as pd
import pytest

from connectors.landing import Landing
from schemas.tables import data_quality_issues, landing_manifest, quarantine
from sharing.crypto import DecryptionError, decrypt

UTC = dt.timezone.utc
KEY = bytes(range(32))
REGISTER = b"UPN,Surname,Forename,AM\r\nA801200001012,Smith,Jo,N\r\n"
AT = dt.datetime(2026, 9, 3, 8, 20, tzinfo=UTC)


@pytest.fixture
def landing(store, tmp_path):
    return Landing(tmp_path / "landing", store, KEY)


def _files(root):
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_a_new_file_is_written_encrypted_and_recorded(landing, store):
    got = landing.receive("mis-a-8881234", "8881234_20260903_0820.csv", REGISTER, layout="mis-a", received_at=AT)
    file_id = hashlib.sha256(REGISTER).hexdigest()
    assert got.is_new and got.file_id == file_id and got.size_bytes == len(REGISTER)
    assert got.landing_path == f"mis-a-8881234/2026-09-03/{file_id}.bin"
    assert _files(landing.root) == [landing.root / got.landing_path]
    assert landing.read(file_id) == REGISTER
    row = store.read(landing_manifest).iloc[0]
    assert (row["status"], row["layout"], row["file_name"]) == ("landed", "mis-a", "8881234_20260903_0820.csv")
    assert row["received_at"].to_pydatetime() == AT


def test_the_copy_on_disk_holds_no_plaintext(landing):
    got = landing.receive("mis-a-8881234", "register.csv", REGISTER, layout="mis-a", received_at=AT)
    on_disk = (landing.root / got.landing_path).read_bytes()
    for secret in (b"Smith", b"A801200001012", b"Surname"):
        assert secret not in on_disk
        assert secret.hex().encode() not in on_disk
    assert decrypt(KEY, on_disk) == REGISTER


def test_the_same_bytes_again_under_any_name_change_nothing(landing, store):
    first = landing.receive("mis-a-8881234", "a.csv", REGISTER, layout="mis-a", received_at=AT)
    again = landing.receive("mis-a-8881234", "b.csv", REGISTER, layout="mis-a", received_at=AT + dt.timedelta(days=1))
    assert not again.is_new
    assert (again.file_id, again.file_name, again.landing_path) == (first.file_id, "a.csv", first.landing_path)
    assert len(_files(landing.root)) == 1
    assert len(store.read(landing_manifest)) == 1


def test_the_landing_day_is_the_london_day(landing):
    late = dt.datetime(2026, 9, 2, 23, 30, tzinfo=UTC)  # 00:30 BST on 3 September
    got = landing.receive("sc", "persons.csv", b"x", layout=None, received_at=late)
    assert got.landing_path.startswith("sc/2026-09-03/")


@pytest.mark.parametrize("name", [
    "../register.csv", "in/register.csv", "in\\register.csv", "/etc/passwd", "register\x00.csv",
    "..", "", "  ", "C:register.csv", "a..b.csv", "line\nbreak.csv",
])
def test_unsafe_file_names_are_refused_and_nothing_lands(landing, store, name):
    with pytest.raises(ValueError, match="unsafe file name"):
        landing.receive("mis-a-8881234", name, REGISTER, layout="mis-a", received_at=AT)
    assert _files(landing.root) == []
    assert store.read(landing_manifest).empty


@pytest.mark.parametrize("source", ["../up", "a/b", "..", ".hidden", ""])
def test_unsafe_source_ids_are_refused(landing, source):
    with pytest.raises(ValueError, match="unsafe source id"):
        landing.receive(source, "x.csv", REGISTER, layout=None, received_at=AT)


def test_pending_then_staged_or_failed(landing):
    a = landing.receive("mis-a-8881234", "a.csv", b"a", layout="mis-a", received_at=AT)
    b = landing.receive("mis-a-8881234", "b.csv", b"b", layout="mis-a", received_at=AT + dt.timedelta(minutes=5))
    c = landing.receive("sc", "c.csv", b"c", layout=None, received_at=AT)
    assert [p["file_id"] for p in landing.pending()] == [a.file_id, c.file_id, b.file_id]
    assert [p["file_id"] for p in landing.pending("mis-a-8881234")] == [a.file_id, b.file_id]
    staged_at = dt.datetime(2026, 9, 3, 8, 30, tzinfo=UTC)
    landing.mark_staged(a.file_id, rows_read=10, rows_staged=9, rows_quarantined=1, at=staged_at)
    landing.mark_failed(b.file_id, "mis-a-8881234 b.csv: header row missing column 'Mark'")
    assert [p["file_id"] for p in landing.pending()] == [c.file_id]
    entry = landing.entry(a.file_id)
    assert (entry["status"], entry["rows_read"], entry["rows_staged"], entry["rows_quarantined"]) == ("staged", 10, 9, 1)
    assert entry["staged_at"] == staged_at
    assert landing.entry(b.file_id)["status"] == "failed"
    assert "header row" in landing.entry(b.file_id)["error"]
    with pytest.raises(LookupError):
        landing.mark_staged("0" * 64, rows_read=0, rows_staged=0, rows_quarantined=0)


def test_a_tampered_copy_does_not_read(landing):
    got = landing.receive("sc", "x.csv", REGISTER, layout=None, received_at=AT)
    path = landing.root / got.landing_path
    blob = bytearray(path.read_bytes())
    blob[-1] ^= 1
    path.write_bytes(bytes(blob))
    with pytest.raises(DecryptionError):
        landing.read(got.file_id)


@dataclass
class Rejected:
    row_number: int | None
    field: str | None
    reason: str
    raw: bytes | None


def test_quarantined_rows_are_encrypted_and_decryptable(landing, store):
    rows = [Rejected(2, "mark", "unknown attendance code", b"A801200001012,Smith,Jo,Q\r\n"),
            {"row_number": 3, "field": "upn", "reason": "invalid UPN check letter", "raw": "X1,Smith,Al,/"},
            Rejected(None, None, "file could not be decoded as UTF-8", None)]
    assert landing.quarantine(source_id="mis-a-8881234", file_id="f" * 64, file_name="r.csv", rows=rows, at=AT) == 3
    got = store.read(quarantine)
    assert got["row_number"].tolist()[:2] == [2, 3] and got["row_number"].isna().iloc[2]
    assert all(b"Smith" not in p for p in got["payload_enc"][:2])
    assert decrypt(KEY, got["payload_enc"].iloc[0]) == b"A801200001012,Smith,Jo,Q\r\n"
    assert decrypt(KEY, got["payload_enc"].iloc[1]) == b"X1,Smith,Al,/"
    assert got["payload_enc"].iloc[2] is None
    assert (got["quarantined_at"] == pd.Timestamp(AT)).all()
    # staging the same file again quarantines nothing new
    assert landing.quarantine(source_id="mis-a-8881234", file_id="f" * 64, file_name="r.csv", rows=rows, at=AT) == 0
    assert len(store.read(quarantine)) == 3


def test_issues_are_recorded_once(landing, store):
    issues = [{"row_number": 4, "field": "nhs_number", "issue": "NHS number fails its check digit"},
              {"row_number": 9, "field": "minutes_late", "issue": "late mark without minutes"}]
    kw = dict(source_id="camhs", file_id="e" * 64, file_name="referrals.csv", at=AT)
    assert landing.record_issues(issues=issues, **kw) == 2
    assert landing.record_issues(issues=issues[:1] + [{"row_number": 10, "field": None, "issue": "x"}], **kw) == 1
    got = store.read(data_quality_issues)
    assert got["row_number"].tolist() == [4, 9, 10]
    assert set(got["file_name"]) == {"referrals.csv"}

