"""Every generated file is exactly in its built-in layout: name, header, encoding, line endings, dates."""
from __future__ import annotations

import csv
import datetime as dt

import pytest

from schemas.config import load_config
from synthetic import writers

EXPECTED_HEADERS = {
    # docs/layouts.md, spelled out here by hand
    "mis-a": "Adno,UPN,Legal Surname,Legal Forename,DOB,Gender,Reg Group,Date,Session,Mark,Minutes Late",
    "mis-b": "Student ID,UPN,Last Name,First Name,Date of Birth,Sex,Year Group,Registration Form,Session Date,"
             "Session,Attendance Mark,Minutes Late,Updated At",
    "mis-a-pupils": "Adno,UPN,Former UPN,Legal Surname,Legal Forename,Preferred Surname,Preferred Forename,DOB,"
                    "Gender,Postcode,Year Group,Admission Date,Leaving Date,SEN Provision,FSM Eligible,NHS Number,"
                    "Destination LAESTAB",
    "sc-persons": "PersonID,UPN,NHSNumber,Forename,Surname,DOB,Sex,Postcode,Restricted",
    "sc-episodes": "PersonID,EpisodeID,EpisodeType,StartDate,EndDate,LegalStatus",
    "sc-allocations": "PersonID,WorkerID,WorkerName,WorkerEmail,TeamID,TeamName,StartDate,EndDate",
    "camhs-referrals": "NHSNumber,LocalPatientID,GivenName,FamilyName,BirthDate,Gender,Postcode,ReferralID,"
                       "ReferralReceivedDate,ReferralStatus,DischargeDate,ServiceTeam,TeamContact,"
                       "PrimaryReasonForReferral",
}
DATE_FIELDS = ("dob", "session_date", "admission_date", "leaving_date", "start_date", "end_date",
               "referral_date", "discharge_date")


def _files(report, la_files):
    for source_dir in sorted(report.inbox_dir.iterdir()):
        for path in sorted(source_dir.iterdir()):
            yield source_dir.name, path, la_files.layout_of(report, source_dir.name, path.name)


def test_writer_headers_are_the_feeds_md_headers():
    assert ",".join(writers.MIS_A_ATTENDANCE) == EXPECTED_HEADERS["mis-a"]
    assert ",".join(writers.MIS_B_ATTENDANCE) == EXPECTED_HEADERS["mis-b"]
    assert ",".join(writers.MIS_A_PUPILS) == EXPECTED_HEADERS["mis-a-pupils"]
    assert ",".join(writers.CAMHS_REFERRALS) == EXPECTED_HEADERS["camhs-referrals"]


@pytest.mark.parametrize("name", sorted(EXPECTED_HEADERS))
def test_expected_headers_map_onto_the_built_in_layouts(name):
    layout = load_config().layout(name)
    header = EXPECTED_HEADERS[name].split(",")
    mapped = set(layout.columns.values()) | set(layout.drop)
    assert [h for h in header if h not in mapped] == []
    required = [h for f, h in layout.columns.items() if f not in layout.optional]
    assert [h for h in required if h not in header] == []


def test_every_file_has_its_layout_header_name_and_encoding(small_la, la_files):
    """Every file but the planted refused one, whose header lacks the Mark column."""
    seen = set()
    refused = {name for name, rows in la_files.quarantined(small_la).items() if rows is None}
    for source_id, path, layout in _files(small_la, la_files):
        seen.add(layout.name)
        assert layout.parse_filename(path.name) is not None, path.name
        data = path.read_bytes()
        first_line = data.split(b"\n", 1)[0]
        if layout.name == "mis-b":
            assert data.startswith(b"\xef\xbb\xbf")
        else:
            assert not data.startswith(b"\xef\xbb\xbf")
        if layout.encoding == "cp1252":
            assert first_line.endswith(b"\r") and data.count(b"\r\n") == data.count(b"\n")
        else:
            assert b"\r" not in data
        header = data.decode(layout.encoding).splitlines()[0]
        if path.name in refused:
            assert header == EXPECTED_HEADERS[layout.name].replace(",Mark,", ","), path.name
            continue
        assert header == EXPECTED_HEADERS[layout.name], path.name
    assert seen == set(EXPECTED_HEADERS)


def test_dates_parse_with_the_layout_date_format(small_la, la_files):
    for source_id, path, layout in _files(small_la, la_files):
        for row in la_files.clean_rows(small_la, path, layout)[:200]:
            for field in DATE_FIELDS:
                if row.get(field):
                    dt.datetime.strptime(row[field], layout.date_format)
            if layout.name == "mis-b":
                stamp = dt.datetime.fromisoformat(row["updated_at"])
                assert stamp.tzinfo is not None
                assert row["session"] in ("Morning", "Afternoon")
            if layout.name == "mis-a":
                assert row["session"] in ("AM", "PM")


def test_layout_a_is_windows_1252_not_utf8(medium_la):
    """Accented names (Zoë, Chloé, Müller...) are single cp1252 bytes, which are not valid UTF-8."""
    non_ascii = 0
    for path in (medium_la.inbox_dir / "school_mis_a").glob("*_pupils_*.csv"):
        data = path.read_bytes()
        if any(b > 0x7F for b in data):
            non_ascii += 1
            with pytest.raises(UnicodeDecodeError):
                data.decode("utf-8")
            data.decode("cp1252")
    assert non_ascii > 0


def test_mis_b_non_ascii_is_utf8(medium_la):
    texts = [p.read_bytes().decode("utf-8-sig") for p in (medium_la.inbox_dir / "school_mis_b").glob("*.csv")]
    assert any(any(ord(ch) > 0x7F for ch in t) for t in texts)


def test_camhs_keeps_clinical_text_in_the_dropped_column(small_la, la_files):
    path = next((small_la.inbox_dir / "camhs").glob("camhs_referrals_*.csv"))
    layout = la_files.layout_of(small_la, "camhs", path.name)
    assert layout.drop == ("PrimaryReasonForReferral",)
    skip = la_files.quarantined(small_la).get(path.name, frozenset())
    with path.open(encoding="utf-8", newline="") as fh:
        rows = [r for n, r in enumerate(csv.DictReader(fh), start=1) if n not in skip]
    assert rows and all(r["PrimaryReasonForReferral"] for r in rows)
    assert {r["ReferralStatus"] for r in rows} <= {"waiting", "open", "closed"}
    assert {r["Gender"] for r in rows} <= {"1", "2", "9"}
