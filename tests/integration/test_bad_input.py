"""Bad input, one case per test: each ends in quarantine (or a data-quality issue) and nothing else stops.

Every test builds a small LA from scratch: a folder-based configuration written here (two MIS
schools, social care with its extract and both statutory returns, CAMHS), a few good files per feed
and ONE bad file. It then lands and stages every source. For the bad file it checks the quarantine
(source, file, row, field, a reason that says what is wrong), that the quarantined payload decrypts
to the file's own bytes, that the good files of every feed were still staged, that every file
reconciles (rows read = rows staged + rows quarantined), and that no plaintext identity used in any
file appears in the store (any table, any column) or in the landing folder's bytes.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import resource
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
from zoneinfo import ZoneInfo

from connectors.store_setup import init_store
from orchestration import stages
from orchestration.resources import TetherContext
from schemas import tables as t
from sharing.crypto import decrypt, decrypt_json
from sharing.keys import write_new_keys
from synthetic.people import upn_with_check
from synthetic.statutory import write_cin_census, write_ssda903
from synthetic.writers import (CAMHS_REFERRALS, MIS_A_ATTENDANCE, MIS_A_PUPILS, MIS_B_ATTENDANCE,
                               SC_ALLOCATIONS, SC_EPISODES, SC_PERSONS)
from transforms.linkage import identifier_conflicts
from transforms.pseudonymise import SC_PERSON_NS, pupil_ref, record_ref

pytestmark = pytest.mark.integration

LONDON = ZoneInfo("Europe/London")
AS_OF = dt.datetime(2026, 11, 30, 9, 45, tzinfo=LONDON)
DAY = dt.date(2026, 11, 27)                 # a Friday in the autumn term
STAMP = f"{DAY:%Y%m%d}"
GOOD_A, GOOD_B, BAD_A, BAD_B = "8864001", "8864002", "8864003", "8864004"
CLINICAL_PHRASE = "Zyxomorphic ruminations reported by GP"     # must never be stored anywhere

SOURCES_TOML = """
[sources.school_mis_a]
path = "inbox/school_mis_a"
[[sources.school_mis_a.files]]
pattern = "*_attendance_*.csv"
layout = "mis-a"
[[sources.school_mis_a.files]]
pattern = "*_pupils_*.csv"
layout = "mis-a-pupils"

[sources.school_mis_b]
path = "inbox/school_mis_b"
[[sources.school_mis_b.files]]
pattern = "*_attendance_*.csv"
layout = "mis-b"

[sources.social_care]
path = "inbox/social_care"
[[sources.social_care.files]]
pattern = "sc_persons_*.csv"
layout = "sc-persons"
[[sources.social_care.files]]
pattern = "sc_episodes_*.csv"
layout = "sc-episodes"
[[sources.social_care.files]]
pattern = "sc_allocations_*.csv"
layout = "sc-allocations"
[[sources.social_care.files]]
pattern = "cin_census_*.xml"
layout = "cin-census"
[[sources.social_care.files]]
pattern = "ssda903_header_*.csv"
layout = "ssda903-header"
[[sources.social_care.files]]
pattern = "ssda903_episodes_*.csv"
layout = "ssda903-episodes"

[sources.camhs]
path = "inbox/camhs"
[[sources.camhs.files]]
pattern = "camhs_referrals_*.csv"
layout = "camhs-referrals"
"""
SOURCE_IDS = ("school_mis_a", "school_mis_b", "social_care", "camhs")
UNLISTED = "8864009"                       # a school that schools.toml does not list
SCHOOLS_TOML = "".join(f'[schools."{s}"]\nname = "School {s}"\n' for s in (GOOD_A, GOOD_B, BAD_A, BAD_B))


# --- the people in the files -------------------------------------------------------------------

def upn(estab: str, serial: int) -> str:
    return upn_with_check(f"886{estab}15{serial:03d}")


def nhs_number(body: str) -> str:
    """A 999-range NHS number with its modulus-11 check digit (body: 9 digits giving check < 10)."""
    total = sum(int(d) * w for d, w in zip(body, range(10, 1, -1)))
    check = 11 - total % 11
    assert check != 10
    return body + str(0 if check == 11 else check)


@dataclass(frozen=True)
class Child:
    ref: str                 # school pupil id / LA child id / local patient id: identity too
    upn: str
    forename: str
    surname: str
    dob: dt.date
    sex: str = "F"
    nhs: str = ""

    def identity(self) -> list[str]:
        values = [self.ref, self.upn, self.forename, self.surname, self.dob.isoformat(),
                  self.dob.strftime("%d/%m/%Y")]
        return values + ([self.nhs] if self.nhs else [])


# Good files: two pupils per school, two social-care persons, CIN/SSDA903 children, one patient.
A1 = Child("ADN-4101", upn(GOOD_A[3:], 101), "Ottoline", "Quartermaine", dt.date(2015, 4, 17))
A2 = Child("ADN-4102", upn(GOOD_A[3:], 102), "Peregrine", "Vexley", dt.date(2016, 1, 9), "M")
B1 = Child("STU-5201", upn(GOOD_B[3:], 201), "Isolde", "Wrenfield", dt.date(2015, 7, 23))
B2 = Child("STU-5202", upn(GOOD_B[3:], 202), "Caspian", "Thornbury", dt.date(2017, 3, 2), "M")
S1 = Child("LA90001", upn(GOOD_A[3:], 301), "Marigold", "Ashcombe", dt.date(2014, 5, 30), "F",
           nhs_number("999000012"))
S2 = Child("LA90002", upn(GOOD_B[3:], 302), "Thaddeus", "Brightwater", dt.date(2013, 11, 4), "M")
S3 = Child("LA90003", upn(GOOD_A[3:], 303), "", "", dt.date(2016, 6, 12))      # CIN census only
H1 = Child("RX7-55501", "", "Florian", "Lockhart", dt.date(2012, 2, 14), "M", nhs_number("999000025"))
GOOD_PEOPLE = (A1, A2, B1, B2, S1, S2, S3, H1)

# The pupils of the bad files (school BAD_A on layout mis-a, BAD_B on layout mis-b).
C1 = Child("ADN-9101", upn(BAD_A[3:], 401), "Wilhelmina", "Fotheringay", dt.date(2016, 8, 21))
C2 = Child("ADN-9102", upn(BAD_A[3:], 402), "Bartholomew", "Pennyworth", dt.date(2015, 10, 3), "M")
D1 = Child("STU-9201", upn(BAD_B[3:], 501), "Philippa", "Gallowglass", dt.date(2017, 12, 1))


# --- writing files -----------------------------------------------------------------------------

def csv_bytes(header: list[str], rows: list[list], *, encoding: str = "utf-8", crlf: bool = False,
              delimiter: str = ",", bom: bool = False) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n" if crlf else "\n")
    writer.writerow(header)
    writer.writerows(rows)
    return (b"\xef\xbb\xbf" if bom else b"") + buffer.getvalue().encode(encoding)


def mis_a_row(c: Child, session: str, mark: str, *, day: str | None = None, dob: str | None = None,
              reg: str = "5W") -> list[str]:
    return [c.ref, c.upn, c.surname, c.forename, dob or c.dob.strftime("%d/%m/%Y"), c.sex, reg,
            day or DAY.strftime("%d/%m/%Y"), session, mark, ""]


def mis_a_rows(*children: Child, marks=("/", "N")) -> list[list[str]]:
    return [mis_a_row(c, s, m) for c in children for s, m in zip(("AM", "PM"), marks)]


def year_group(dob: dt.date) -> str:
    """The year group of a child born on `dob` in 2026/27 (year N: born 1 Sep 2021-N .. 31 Aug 2022-N)."""
    return str(2021 - (dob.year if dob.month >= 9 else dob.year - 1))


def mis_b_row(c: Child, session: str, mark: str, *, year: str | None = None) -> list[str]:
    return [c.ref, c.upn, c.surname, c.forename, c.dob.isoformat(), c.sex, year or year_group(c.dob), "5B",
            DAY.isoformat(), session, mark, "", f"{DAY.isoformat()}T16:00:00"]


def mis_a_file(rows: list[list[str]], **kw) -> bytes:
    return csv_bytes(MIS_A_ATTENDANCE, rows, encoding=kw.pop("encoding", "cp1252"), crlf=True, **kw)


def data_lines(data: bytes) -> list[bytes]:
    """The file's non-blank lines without their terminators; [0] is the header, [n] data row n."""
    lines = [line[:-1] if line.endswith(b"\r") else line for line in data.split(b"\n")]
    return [line for line in lines if line.strip(b" \t\r")]


# --- the deployment ----------------------------------------------------------------------------

@dataclass
class Deployment:
    root: Path
    ctx: TetherContext
    good_files: dict[str, dict] = field(default_factory=dict)     # file name -> expected counts
    identities: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)         # file name -> source it was put in

    def inbox(self, source_id: str) -> Path:
        return self.root / "inbox" / source_id

    def put(self, source_id: str, name: str, data: bytes, *, good: dict | None = None) -> Path:
        path = self.inbox(source_id) / name
        path.write_bytes(data)
        self.sources[name] = source_id
        if good is not None:
            self.good_files[name] = good
        return path

    def load(self) -> dict:
        """Land and stage every source, as the per-source assets would."""
        figures = {}
        for sid in SOURCE_IDS:
            source = self.ctx.config.sources[sid]
            figures[sid] = (stages.land_source(self.ctx, source), stages.stage_source(self.ctx, source))
        return figures

    # -- reading the store back --

    def manifest(self) -> pd.DataFrame:
        return self.ctx.store.read(t.landing_manifest)

    def entry(self, name: str) -> dict:
        m = self.manifest()
        rows = m[m["file_name"] == name]
        assert len(rows) == 1, f"{name} landed {len(rows)} times"
        return rows.iloc[0].to_dict()

    def quarantined(self, name: str) -> pd.DataFrame:
        q = self.ctx.store.read(t.quarantine)
        return q[q["file_name"] == name].reset_index(drop=True)

    def issues(self, name: str | None = None) -> pd.DataFrame:
        dq = self.ctx.store.read(t.data_quality_issues)
        return dq if name is None else dq[dq["file_name"] == name].reset_index(drop=True)

    def payload(self, row) -> bytes | None:
        blob = row["payload_enc"]
        return None if blob is None else decrypt(self.ctx.keys.identity_key, bytes(blob))

    def pupil_identity(self, laestab: str, pupil_id: str) -> dict:
        pupils = self.ctx.store.read(t.staged_pupils)
        ref = pupil_ref(self.ctx.keys.token_key, laestab, pupil_id)
        row = pupils[(pupils["laestab"] == laestab) & (pupils["pupil_ref"] == ref)]
        assert len(row) == 1
        return decrypt_json(self.ctx.keys.identity_key, bytes(row["identity_enc"].iloc[0]))

    def marks(self, laestab: str) -> pd.DataFrame:
        marks = self.ctx.store.read(t.staged_marks)
        return marks[marks["laestab"] == laestab]

    # -- the invariants every case must keep --

    def assert_good_files_loaded(self) -> None:
        """Every good file of every feed was staged whole, and its rows are in the staged tables."""
        m = self.manifest().set_index("file_name")
        for name, want in self.good_files.items():
            got = m.loc[name]
            assert got["status"] == "staged", (name, got["status"], got["error"])
            assert (int(got["rows_read"]), int(got["rows_staged"]), int(got["rows_quarantined"])) == \
                (want["rows"], want["rows"], 0), name
            assert self.quarantined(name).empty, name
        store = self.ctx.store
        assert len(self.marks(GOOD_A)) == 4 and len(self.marks(GOOD_B)) == 4
        pupils = store.read(t.staged_pupils)
        assert set(pupils.loc[pupils["laestab"].isin([GOOD_A, GOOD_B]), "pupil_ref"]) == {
            pupil_ref(self.ctx.keys.token_key, GOOD_A, A1.ref), pupil_ref(self.ctx.keys.token_key, GOOD_A, A2.ref),
            pupil_ref(self.ctx.keys.token_key, GOOD_B, B1.ref), pupil_ref(self.ctx.keys.token_key, GOOD_B, B2.ref)}
        good_ids = {e["file_id"] for e in self.manifest().to_dict("records") if e["file_name"] in self.good_files}
        persons = store.read(t.staged_sc_persons)
        assert len(persons[persons["file_id"].isin(good_ids)]) == 3          # S1, S2 (extract) + S3 (CIN)
        episodes = store.read(t.staged_sc_episodes)
        assert len(episodes[episodes["file_id"].isin(good_ids)]) == 6        # 2 extract + 3 CIN/CPP + 1 CLA
        allocations = store.read(t.staged_sc_allocations)
        assert len(allocations[allocations["file_id"].isin(good_ids)]) == 2
        referrals = store.read(t.staged_camhs_referrals)
        assert len(referrals[referrals["file_id"].isin(good_ids)]) == 2

    def assert_every_file_reconciles(self) -> None:
        m = self.manifest()
        assert (m["status"] != "landed").all(), "a landed file was left unstaged"
        for e in m.to_dict("records"):
            counts = (e["rows_read"], e["rows_staged"], e["rows_superseded"], e["rows_quarantined"])
            assert all(c is not None and not pd.isna(c) for c in counts), (e["file_name"], counts)
            assert int(e["rows_read"]) == sum(map(int, counts[1:])), (e["file_name"], counts)

    def assert_no_identity_anywhere(self, extra: tuple[str, ...] = ()) -> None:
        """No plaintext identity in any table (text or binary columns) nor in the landing folder."""
        values = [v for v in {*self.identities, *extra, CLINICAL_PHRASE} if v]
        needles = {v: {v.encode(enc, errors="ignore") for enc in ("utf-8", "cp1252", "utf-16-le")} for v in values}
        leaks = []
        for table in t.metadata.sorted_tables:
            df = self.ctx.store.read(table)
            for column in df.columns:
                for cell in df[column]:
                    if cell is None or (not isinstance(cell, (bytes, bytearray, memoryview)) and pd.isna(cell)):
                        continue
                    if isinstance(cell, (bytes, bytearray, memoryview)):
                        blob = bytes(cell)
                        leaks += [(table.name, column, v) for v, ns in needles.items() if any(n in blob for n in ns)]
                    else:
                        text = str(cell).casefold()
                        leaks += [(table.name, column, v) for v in values if v.casefold() in text]
        for path in (self.root / "data").rglob("*"):
            if path.is_file():
                blob = path.read_bytes()
                leaks += [(str(path.relative_to(self.root)), None, v)
                          for v, ns in needles.items() if any(n in blob for n in ns)]
        assert leaks == []

    def assert_quarantine_names_source_and_file(self, name: str) -> None:
        e = self.entry(name)
        assert e["source_id"] == self.sources[name]
        q = self.quarantined(name)
        assert set(q["source_id"]) <= {e["source_id"]} and set(q["file_id"]) <= {e["file_id"]}
        assert q["quarantined_at"].notna().all()

    def assert_reasons_safe(self, name: str, extra: tuple[str, ...] = ()) -> None:
        texts = list(self.quarantined(name)["reason"]) + list(self.issues(name)["issue"])
        e = self.entry(name)
        texts += [e["error"]] if isinstance(e["error"], str) else []
        for text in texts:
            assert text and text.strip()
            for v in (*self.identities, *extra):
                if v:
                    assert v.casefold() not in text.casefold(), "a reason quotes an identity value"

    def assert_payloads_are_the_files_bytes(self, name: str, data: bytes, *, line_based: bool = True) -> None:
        """Each row entry decrypts to that row's bytes; a whole-file entry to the file or its header."""
        lines = data_lines(data) if line_based else []
        for _, row in self.quarantined(name).iterrows():
            payload = self.payload(row)
            assert payload is not None
            if pd.isna(row["row_number"]):
                assert payload in (data, lines[0] if lines else data), "whole-file payload is not the file"
            elif line_based:
                assert payload == lines[int(row["row_number"])], f"payload of row {row['row_number']}"
            else:
                assert payload and payload in data

    def assert_all_invariants(self, name: str, data: bytes, *, line_based: bool = True,
                              extra_identities: tuple[str, ...] = ()) -> None:
        self.assert_good_files_loaded()
        self.assert_every_file_reconciles()
        self.assert_quarantine_names_source_and_file(name)
        self.assert_reasons_safe(name, extra_identities)
        if data:
            self.assert_payloads_are_the_files_bytes(name, data, line_based=line_based)
        self.assert_no_identity_anywhere(extra_identities)


def write_config(root: Path, extra_sources: str = "") -> Path:
    config = root / "config"
    config.mkdir(parents=True)
    (config / "sources.toml").write_text(SOURCES_TOML + extra_sources, encoding="utf-8")
    (config / "schools.toml").write_text(SCHOOLS_TOML, encoding="utf-8")
    for sid in SOURCE_IDS:
        (root / "inbox" / sid).mkdir(parents=True)
    return config


def write_good_files(dep: Deployment) -> None:
    dep.put("school_mis_a", f"{GOOD_A}_attendance_{STAMP}.csv", mis_a_file(mis_a_rows(A1, A2)), good={"rows": 4})
    dep.put("school_mis_b", f"{GOOD_B}_attendance_{STAMP}.csv", csv_bytes(
        MIS_B_ATTENDANCE, [mis_b_row(c, s, m) for c in (B1, B2) for s, m in (("Morning", "/"), ("Afternoon", "/"))],
        bom=True), good={"rows": 4})
    sc = "social_care"
    dep.put(sc, f"sc_persons_{STAMP}.csv", csv_bytes(SC_PERSONS, [
        [S1.ref, S1.upn, S1.nhs, S1.forename, S1.surname, S1.dob.isoformat(), "F", "ME1 1AA", "N"],
        [S2.ref, S2.upn, "", S2.forename, S2.surname, S2.dob.isoformat(), "M", "ME2 2BB", ""]]), good={"rows": 2})
    dep.put(sc, f"sc_episodes_{STAMP}.csv", csv_bytes(SC_EPISODES, [
        [S1.ref, "EP-7001", "CIN", "2026-01-05", "", ""],
        [S2.ref, "EP-7002", "CLA", "2025-06-01", "", "C2"]]), good={"rows": 2})
    dep.put(sc, f"sc_allocations_{STAMP}.csv", csv_bytes(SC_ALLOCATIONS, [
        [S1.ref, "W-11", "Alex Worker", "alex.worker@la.example", "T-1", "North", "2026-01-05", ""],
        [S2.ref, "W-12", "Sam Worker", "sam.worker@la.example", "T-2", "South", "2025-06-01", ""]]), good={"rows": 2})
    scratch = dep.root / "scratch"
    scratch.mkdir()
    cin = write_cin_census(scratch / "cin.xml", [
        {"person_id": S1.ref, "upn": S1.upn, "dob": S1.dob, "sex": "F",
         "cin_details": [{"referral_date": dt.date(2026, 1, 5)}]},
        {"person_id": S3.ref, "upn": S3.upn, "dob": S3.dob, "sex": "F",
         "cin_details": [{"referral_date": dt.date(2026, 3, 10),
                          "cpp": [{"start_date": dt.date(2026, 4, 1)}]}]}])
    dep.put(sc, f"cin_census_{STAMP}.xml", cin.read_bytes(), good={"rows": 2})
    header, episodes = write_ssda903(scratch / "h.csv", scratch / "e.csv",
                                     [{"person_id": S2.ref, "sex": "M", "dob": S2.dob, "upn": S2.upn}],
                                     [{"person_id": S2.ref, "decom": dt.date(2025, 6, 1), "rne": "S", "ls": "C2",
                                       "cin": "N1", "place": "U1"}])
    dep.put(sc, f"ssda903_header_{STAMP}.csv", header.read_bytes(), good={"rows": 1})
    dep.put(sc, f"ssda903_episodes_{STAMP}.csv", episodes.read_bytes(), good={"rows": 1})
    dep.put("camhs", f"camhs_referrals_{STAMP}.csv", csv_bytes(CAMHS_REFERRALS, [
        [H1.nhs, H1.ref, H1.forename, H1.surname, H1.dob.isoformat(), "1", "ME3 3CC", f"REF-{n}",
         "2026-09-0" + str(n), "open", "", "Team East", "east@trust.example", CLINICAL_PHRASE] for n in (1, 2)]),
        good={"rows": 2})


def make_deployment(root: Path, monkeypatch, extra_sources: str = "") -> Deployment:
    config = write_config(root, extra_sources)
    keys = write_new_keys(root / "keys")
    env = {"TETHER_CONFIG_DIR": str(config), "TETHER_DATA_DIR": str(root / "data"),
           "TETHER_DATABASE_URL": f"sqlite:///{root / 'tether.sqlite'}", "TETHER_AS_OF": AS_OF.isoformat(),
           "DAGSTER_HOME": str(root / "dagster_home"), **keys}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    init_store(env["TETHER_DATABASE_URL"])[0].dispose()
    ctx = TetherContext(env["TETHER_DATABASE_URL"], str(config), str(root / "data"), AS_OF.isoformat())
    dep = Deployment(root, ctx)
    dep.identities = [v for c in (*GOOD_PEOPLE, C1, C2, D1) for v in c.identity()]
    write_good_files(dep)
    return dep


@pytest.fixture
def dep(tmp_path, monkeypatch) -> Deployment:
    deployment = make_deployment(tmp_path, monkeypatch)
    yield deployment
    deployment.ctx.store.dispose()


BAD_NAME = f"{BAD_A}_attendance_{STAMP}.csv"
BAD_NAME_B = f"{BAD_B}_attendance_{STAMP}.csv"


def only_row_entries(q: pd.DataFrame) -> list[tuple]:
    return [(int(r.row_number), r.field) for r in q.itertuples() if not pd.isna(r.row_number)]


# --- encodings ---------------------------------------------------------------------------------

def test_windows_1252_file_with_pound_and_accents_loads(dep):
    zoe = Child("ADN-9111", upn(BAD_A[3:], 411), "Zoé", "Dúnlaith-Brontë", dt.date(2016, 5, 5))
    dep.identities += zoe.identity()
    rows = [mis_a_row(zoe, "AM", "/", reg="5£"), mis_a_row(zoe, "PM", "L", reg="5£")] + mis_a_rows(C1)
    data = mis_a_file(rows)
    assert b"\xa3" in data and b"\xe9" in data                  # really Windows-1252 bytes
    dep.put("school_mis_a", BAD_NAME, data)
    dep.load()
    e = dep.entry(BAD_NAME)
    assert (e["status"], e["rows_read"], e["rows_staged"], e["rows_quarantined"]) == ("staged", 4, 4, 0)
    assert dep.quarantined(BAD_NAME).empty
    identity = dep.pupil_identity(BAD_A, zoe.ref)
    assert (identity["forename"], identity["surname"]) == ("Zoé", "Dúnlaith-Brontë")
    pupils = dep.ctx.store.read(t.staged_pupils)
    assert "5£" in set(pupils["reg_group"])
    dep.assert_all_invariants(BAD_NAME, data)


def test_utf8_file_with_byte_order_mark_loads(dep):
    lucja = Child("STU-9211", upn(BAD_B[3:], 511), "Łucja", "Żółkiewska", dt.date(2016, 2, 29))
    dep.identities += lucja.identity()
    data = csv_bytes(MIS_B_ATTENDANCE, [mis_b_row(lucja, "Morning", "/"), mis_b_row(D1, "Morning", "L")], bom=True)
    dep.put("school_mis_b", BAD_NAME_B, data)
    dep.load()
    e = dep.entry(BAD_NAME_B)
    assert (e["status"], e["rows_read"], e["rows_staged"], e["rows_quarantined"]) == ("staged", 2, 2, 0)
    assert dep.pupil_identity(BAD_B, lucja.ref)["forename"] == "Łucja"
    dep.assert_all_invariants(BAD_NAME_B, data)


def test_utf8_bom_file_in_a_windows_1252_layout_is_read_as_utf8(dep):
    lucja = Child("ADN-9112", upn(BAD_A[3:], 412), "Łucja", "Żółkiewska", dt.date(2016, 2, 29))
    dep.identities += lucja.identity()
    data = mis_a_file([mis_a_row(lucja, "AM", "/"), mis_a_row(lucja, "PM", "/")], encoding="utf-8", bom=True)
    dep.put("school_mis_a", BAD_NAME, data)
    dep.load()
    e = dep.entry(BAD_NAME)
    assert (e["status"], e["rows_read"], e["rows_staged"], e["rows_quarantined"]) == ("staged", 2, 2, 0)
    assert dep.pupil_identity(BAD_A, lucja.ref)["surname"] == "Żółkiewska"
    dep.assert_all_invariants(BAD_NAME, data)


def test_utf8_row_without_bom_in_a_windows_1252_layout_quarantines_the_undecodable_row(dep):
    # 'Ł' in UTF-8 is C5 81; 0x81 is not a Windows-1252 character
    lucja = Child("ADN-9113", upn(BAD_A[3:], 413), "Łucja", "Nowak", dt.date(2016, 2, 29))
    dep.identities += lucja.identity()
    rows = [mis_a_row(lucja, "AM", "/")] + mis_a_rows(C1)
    data = mis_a_file(rows, encoding="utf-8")
    dep.put("school_mis_a", BAD_NAME, data)
    dep.load()
    e = dep.entry(BAD_NAME)
    assert (e["status"], e["rows_read"], e["rows_staged"], e["rows_quarantined"]) == ("staged", 3, 2, 1)
    q = dep.quarantined(BAD_NAME)
    assert only_row_entries(q) == [(1, "forename")] and len(q) == 1
    assert "cp1252" in q["reason"].iloc[0]
    dep.assert_all_invariants(BAD_NAME, data)


def test_file_in_an_encoding_the_layout_does_not_name_is_quarantined(dep):
    # mis-a says Windows-1252; this file is UTF-16 (with its byte-order mark)
    text = mis_a_file(mis_a_rows(C1, C2), encoding="cp1252").decode("cp1252")
    data = text.encode("utf-16")
    dep.put("school_mis_a", BAD_NAME, data)
    dep.load()
    e = dep.entry(BAD_NAME)
    assert e["rows_staged"] == 0
    assert dep.marks(BAD_A).empty
    q = dep.quarantined(BAD_NAME)
    whole = q[q["row_number"].isna()]
    assert len(whole) == 1 and whole["source_id"].iloc[0] == "school_mis_a"
    reason = whole["reason"].iloc[0]
    assert "utf-16" in reason.lower() and ("cp1252" in reason.lower() or "windows-1252" in reason.lower()), reason
    # nothing read is lost: either the whole file is the payload, or every row is quarantined too
    if dep.payload(whole.iloc[0]) != data:
        assert int(e["rows_quarantined"]) == int(e["rows_read"]) == 4
    dep.assert_all_invariants(BAD_NAME, data, line_based=False)


# --- shape of the file ---------------------------------------------------------------------------

def test_wrong_delimiter_quarantines_the_file_and_every_row(dep):
    data = mis_a_file(mis_a_rows(C1, C2), delimiter=";")
    dep.put("school_mis_a", BAD_NAME, data)
    dep.load()
    e = dep.entry(BAD_NAME)
    assert (e["status"], e["rows_read"], e["rows_staged"], e["rows_quarantined"]) == ("failed", 4, 0, 4)
    q = dep.quarantined(BAD_NAME)
    whole = q[q["row_number"].isna()]
    assert len(whole) == 1 and "delimiter" in whole["reason"].iloc[0]
    assert sorted(n for n, _ in only_row_entries(q)) == [1, 2, 3, 4]
    assert all(r.startswith("file not read") for r in q.loc[q["row_number"].notna(), "reason"])
    assert set(q["source_id"]) == {"school_mis_a"}
    assert "delimiter" in e["error"]
    dep.assert_all_invariants(BAD_NAME, data)


@pytest.mark.parametrize("header_mark", [None, "Attendance Code"], ids=["missing", "renamed"])
def test_missing_or_renamed_required_column_refuses_the_file(dep, header_mark):
    header = [h for h in MIS_A_ATTENDANCE if h != "Mark" or header_mark]
    header = [header_mark if h == "Mark" else h for h in header]
    keep = [i for i, h in enumerate(MIS_A_ATTENDANCE) if h != "Mark" or header_mark]
    rows = [[r[i] for i in keep] for r in mis_a_rows(C1, C2)]
    data = csv_bytes(header, rows, encoding="cp1252", crlf=True)
    dep.put("school_mis_a", BAD_NAME, data)
    dep.load()
    e = dep.entry(BAD_NAME)
    assert (e["rows_read"], e["rows_staged"], e["rows_quarantined"]) == (4, 0, 4)
    q = dep.quarantined(BAD_NAME)
    whole = q[q["row_number"].isna()].iloc[0]
    assert whole["field"] == "mark"
    assert "missing required column 'Mark'" in whole["reason"]
    assert sorted(n for n, _ in only_row_entries(q)) == [1, 2, 3, 4]
    dep.assert_all_invariants(BAD_NAME, data)


def test_extra_column_is_ignored_and_the_file_loads(dep):
    header = MIS_A_ATTENDANCE + ["Ethnicity"]
    rows = [r + ["WBRI"] for r in mis_a_rows(C1, C2)]
    data = csv_bytes(header, rows, encoding="cp1252", crlf=True)
    dep.put("school_mis_a", BAD_NAME, data)
    dep.load()
    e = dep.entry(BAD_NAME)
    assert (e["status"], e["rows_read"], e["rows_staged"], e["rows_quarantined"]) == ("staged", 4, 4, 0)
    assert len(dep.marks(BAD_A)) == 4
    assert dep.quarantined(BAD_NAME).empty
    dep.assert_all_invariants(BAD_NAME, data)


# --- codes and dates ---------------------------------------------------------------------------

@pytest.mark.parametrize("mark, says", [("Q9", "not a DfE attendance code"), ("n", "lower case"),
                                        ("H", "withdrawn")], ids=["unknown", "lower-case", "withdrawn"])
def test_bad_attendance_code_quarantines_only_its_row(dep, mark, says):
    rows = mis_a_rows(C1, C2)
    rows[1][9] = mark                                  # C1's PM mark
    data = mis_a_file(rows)
    dep.put("school_mis_a", BAD_NAME, data)
    dep.load()
    e = dep.entry(BAD_NAME)
    assert (e["status"], e["rows_read"], e["rows_staged"], e["rows_quarantined"]) == ("staged", 4, 3, 1)
    q = dep.quarantined(BAD_NAME)
    assert only_row_entries(q) == [(2, "mark")] and len(q) == 1
    assert says in q["reason"].iloc[0] and mark in q["reason"].iloc[0]
    assert q["source_id"].iloc[0] == "school_mis_a"
    assert len(dep.marks(BAD_A)) == 3
    dep.assert_all_invariants(BAD_NAME, data)


def test_impossible_dates_quarantine_their_rows_without_quoting_a_birth_date(dep):
    rows = mis_a_rows(C1, C2)
    rows[0] = mis_a_row(C1, "AM", "/", day="31/02/2026")           # impossible session date
    rows[3] = mis_a_row(C2, "PM", "/", dob="30/02/2015")           # impossible date of birth
    data = mis_a_file(rows)
    dep.put("school_mis_a", BAD_NAME, data)
    dep.load()
    e = dep.entry(BAD_NAME)
    assert (e["status"], e["rows_read"], e["rows_staged"], e["rows_quarantined"]) == ("staged", 4, 2, 2)
    q = dep.quarantined(BAD_NAME)
    assert only_row_entries(q) == [(1, "session_date"), (4, "dob")]
    assert all("date" in r for r in q["reason"])
    dep.assert_all_invariants(BAD_NAME, data, extra_identities=("30/02/2015", "2015-02-30"))


def test_duplicate_row_is_quarantined_and_the_first_kept(dep):
    rows = mis_a_rows(C1, C2)
    rows.insert(2, list(rows[0]))
    data = mis_a_file(rows)
    dep.put("school_mis_a", BAD_NAME, data)
    dep.load()
    e = dep.entry(BAD_NAME)
    assert (e["status"], e["rows_read"], e["rows_staged"], e["rows_quarantined"]) == ("staged", 5, 4, 1)
    q = dep.quarantined(BAD_NAME)
    assert only_row_entries(q) == [(3, None)]
    assert "duplicate of row 1" in q["reason"].iloc[0]
    dep.assert_all_invariants(BAD_NAME, data)


# --- broken bytes --------------------------------------------------------------------------------

def test_empty_file_is_quarantined_whole(dep):
    dep.put("school_mis_a", BAD_NAME, b"")
    dep.load()
    e = dep.entry(BAD_NAME)
    assert (e["status"], e["rows_read"], e["rows_staged"], e["rows_quarantined"]) == ("failed", 0, 0, 0)
    q = dep.quarantined(BAD_NAME)
    assert len(q) == 1 and pd.isna(q["row_number"].iloc[0]) and q["reason"].iloc[0] == "empty file"
    assert q["source_id"].iloc[0] == "school_mis_a"
    assert dep.payload(q.iloc[0]) in (b"", None)
    dep.assert_all_invariants(BAD_NAME, b"")


def test_truncated_last_line_quarantines_that_row(dep):
    full = mis_a_file(mis_a_rows(C1, C2))
    data = full[:full.rindex(b"\r\n", 0, len(full) - 2) + 2] + b",".join(
        x.encode("cp1252") for x in mis_a_rows(C2)[1][:4])             # cut after the forename, no line end
    assert not data.endswith(b"\n")
    dep.put("school_mis_a", BAD_NAME, data)
    dep.load()
    e = dep.entry(BAD_NAME)
    assert (e["status"], e["rows_read"], e["rows_staged"], e["rows_quarantined"]) == ("staged", 4, 3, 1)
    q = dep.quarantined(BAD_NAME)
    assert [n for n, _ in only_row_entries(q)] == [4] and len(q) == 1
    assert "truncated" in q["reason"].iloc[0]
    dep.assert_all_invariants(BAD_NAME, data)


def test_nul_byte_quarantines_its_row(dep):
    rows = mis_a_rows(C1, C2)
    rows[1][6] = "5\x00W"
    data = mis_a_file(rows)
    dep.put("school_mis_a", BAD_NAME, data)
    dep.load()
    e = dep.entry(BAD_NAME)
    assert (e["status"], e["rows_read"], e["rows_staged"], e["rows_quarantined"]) == ("staged", 4, 3, 1)
    q = dep.quarantined(BAD_NAME)
    assert [n for n, _ in only_row_entries(q)] == [2] and len(q) == 1
    assert "NUL" in q["reason"].iloc[0]
    dep.assert_all_invariants(BAD_NAME, data)


def test_a_100_mb_single_line_is_quarantined_within_bounded_memory(dep):
    size = 100 * 1024 * 1024
    good = mis_a_file(mis_a_rows(C1, C2))
    header, rest = good.split(b"\r\n", 1)
    path = dep.inbox("school_mis_a") / BAD_NAME
    with open(path, "wb") as fh:
        fh.write(header + b"\r\n" + rest.split(b"\r\n", 1)[0] + b"\r\n")      # row 1: good
        chunk = b"x" * (1024 * 1024)
        for _ in range(size // len(chunk)):                                     # row 2: 100 MB, one line
            fh.write(chunk)
        fh.write(b"\r\n" + rest.split(b"\r\n", 1)[1])                           # rows 3-5: good
    del good, rest
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    dep.load()
    growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    assert growth < 1.5 * 1024 ** 3, f"peak memory grew by {growth / 1024 ** 2:.0f} MB"

    e = dep.entry(BAD_NAME)
    assert (e["status"], e["rows_read"], e["rows_staged"], e["rows_quarantined"]) == ("staged", 5, 4, 1)
    assert int(e["size_bytes"]) == path.stat().st_size
    q = dep.quarantined(BAD_NAME)
    assert [n for n, _ in only_row_entries(q)] == [2] and len(q) == 1
    reason = q["reason"].iloc[0]
    assert q["source_id"].iloc[0] == "school_mis_a"
    assert any(w in reason for w in ("too long", "longer than", "larger than", "limit")), reason
    payload = dep.payload(q.iloc[0])
    if payload:                              # kept in quarantine; else the landed (encrypted) file holds it
        assert len(payload) == size and payload.count(b"x") == size
    else:
        assert "withheld" in reason
    assert dep.ctx.landing.read(e["file_id"]) == path.read_bytes()
    del payload
    dep.assert_good_files_loaded()
    dep.assert_every_file_reconciles()
    dep.assert_reasons_safe(BAD_NAME)


# --- names and paths -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../8864003_attendance_20261127.csv", "..\\8864003_attendance_20261127.csv",
                                  "inbox/../../8864003_attendance_20261127.csv", "/etc/8864003_attendance.csv",
                                  "C:\\temp\\x.csv", "..", "x\x00.csv"])
def test_landing_refuses_a_file_name_that_could_be_a_path(dep, name):
    landing = dep.ctx.landing
    with pytest.raises(ValueError, match="unsafe file name") as err:
        landing.receive("school_mis_a", name, mis_a_file(mis_a_rows(C1)), layout="mis-a",
                        received_at=dt.datetime(2026, 11, 27, 18, tzinfo=dt.timezone.utc))
    assert len(name) < 3 or name not in str(err.value)          # the name may carry a child's name
    root = dep.root / "data" / "landing"
    assert not root.exists() or not any(p.is_file() for p in root.rglob("*"))
    assert dep.manifest().empty
    with pytest.raises(ValueError, match="unsafe source id"):
        landing.receive("../school_mis_a", "8864003_attendance_20261127.csv", b"x", layout="mis-a",
                        received_at=dt.datetime(2026, 11, 27, 18, tzinfo=dt.timezone.utc))
    assert not root.exists() or not any(p.is_file() for p in root.rglob("*"))


def test_a_source_file_name_can_never_escape_the_landing_root(dep):
    # a name a folder (or SFTP server) can really list that Landing refuses: it holds '..'
    odd = f"{BAD_A}_attendance_{STAMP}..csv"
    data = mis_a_file(mis_a_rows(C1, C2))
    dep.put("school_mis_a", odd, data)
    figures = dep.load()
    landed, _ = figures["school_mis_a"]
    assert landed.get("files_refused") == 1, landed                  # reported, and the other files flowed
    assert (dep.inbox("school_mis_a") / odd).read_bytes() == data     # left where it was: nothing lost
    assert odd not in set(dep.manifest()["file_name"])
    root = (dep.root / "data" / "landing").resolve()
    for entry in dep.manifest().to_dict("records"):
        path = (root / entry["landing_path"]).resolve()
        assert path.is_relative_to(root) and path.name == f"{entry['file_id']}.bin"
    outside = [p for p in (dep.root / "data").rglob("*") if p.is_file() and not p.resolve().is_relative_to(root)]
    assert outside == []
    dep.assert_good_files_loaded()
    dep.assert_every_file_reconciles()
    dep.assert_no_identity_anywhere()


# --- XML attacks -------------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE Message [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Message><Children><Child><ChildIdentifiers><LAchildID>&lol9;</LAchildID>
<PersonBirthDate>2016-01-01</PersonBirthDate><Sex>1</Sex></ChildIdentifiers></Child></Children></Message>
"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE Message [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
<Message><Children><Child><ChildIdentifiers><LAchildID>&xxe;</LAchildID>
<PersonBirthDate>2016-01-01</PersonBirthDate><Sex>1</Sex></ChildIdentifiers></Child></Children></Message>
"""


@pytest.mark.parametrize("data", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["billion-laughs", "external-entity"])
def test_hostile_cin_census_xml_is_quarantined_and_social_care_still_loads(dep, data):
    name = "cin_census_20261128.xml"
    dep.put("social_care", name, data)
    dep.load()
    e = dep.entry(name)
    assert (e["status"], e["rows_read"], e["rows_staged"], e["rows_quarantined"]) == ("failed", 0, 0, 0)
    q = dep.quarantined(name)
    assert len(q) == 1 and pd.isna(q["row_number"].iloc[0]) and q["source_id"].iloc[0] == "social_care"
    assert "XML bomb or external entity" in q["reason"].iloc[0]
    assert dep.payload(q.iloc[0]) == data
    dump = " ".join(str(v) for v in dep.ctx.store.read(t.staged_sc_persons).to_numpy().ravel())
    assert "root:" not in dump and "lollol" not in dump
    dep.assert_all_invariants(name, data, line_based=False, extra_identities=("root:x:0:0",))


# --- two children, one UPN -----------------------------------------------------------------------

def _shared_upn_case(dep) -> tuple[Child, Child]:
    first = Child("ADN-9121", upn(BAD_A[3:], 421), "Clementine", "Harrowgate", dt.date(2016, 9, 14))
    second = Child("STU-9221", first.upn, "Ignatius", "Moorcroft", dt.date(2015, 3, 27), "M")
    dep.identities += first.identity() + second.identity()
    dep.put("school_mis_a", BAD_NAME, mis_a_file(mis_a_rows(first)))
    dep.put("school_mis_b", BAD_NAME_B, csv_bytes(MIS_B_ATTENDANCE, [
        mis_b_row(second, "Morning", "/"), mis_b_row(second, "Afternoon", "/")], bom=True))
    dep.load()
    return first, second


def test_two_children_sharing_one_upn_are_staged_but_never_linked(dep):
    first, second = _shared_upn_case(dep)
    for name in (BAD_NAME, BAD_NAME_B):
        e = dep.entry(name)
        assert (e["status"], e["rows_read"], e["rows_staged"], e["rows_quarantined"]) == ("staged", 2, 2, 0)
    pupils = dep.ctx.store.read(t.staged_pupils)
    tk = dep.ctx.keys.token_key
    refs = {pupil_ref(tk, BAD_A, first.ref), pupil_ref(tk, BAD_B, second.ref)}
    pair = pupils[pupils["pupil_ref"].isin(refs)]
    assert len(pair) == 2 and pair["upn_token"].nunique() == 1 and pair["upn_valid"].all()
    assert pair["name_dob_token"].nunique() == 2

    stages.link(dep.ctx)
    links = dep.ctx.store.read(t.child_links)
    keys = links.loc[links["record_ref"].isin(refs), "child_key"]
    assert len(keys) == 2 and keys.nunique() == 2, "two different children were linked into one"

    persons, _ = stages.social_care(dep.ctx)
    conflicts = identifier_conflicts(pupils, persons, dep.ctx.store.read(t.staged_camhs_referrals))
    mine = conflicts[conflicts["record_ref"].isin(refs)]
    assert set(mine["record_ref"]) == refs and set(mine["identifier"]) == {"upn"}
    assert set(zip(mine["source_id"], mine["row_number"])) == {("school_mis_a", 2), ("school_mis_b", 2)}
    assert all("UPN" in r and "name or date of birth differs" in r for r in mine["reason"])
    dep.assert_all_invariants(BAD_NAME, dep.inbox("school_mis_a").joinpath(BAD_NAME).read_bytes())


def test_two_children_sharing_one_upn_are_recorded_as_a_data_quality_issue(dep):
    _shared_upn_case(dep)
    stages.link(dep.ctx)
    for name, source_id in ((BAD_NAME, "school_mis_a"), (BAD_NAME_B, "school_mis_b")):
        found = dep.issues(name)
        found = found[found["field"] == "upn"]
        assert len(found) >= 1, f"no data-quality issue recorded for the shared UPN in {name}"
        assert set(found["source_id"]) == {source_id}
        assert all("UPN" in i for i in found["issue"])
        assert found["row_number"].notna().all()
    before = len(dep.issues())
    stages.link(dep.ctx)                     # linking again records nothing new
    assert len(dep.issues()) == before
    dep.assert_no_identity_anywhere()


# --- through Dagster: a bad file does not fail the run; a source that is down fails alone ---------

def _dagster_events() -> list:
    """Every Dagster event of every run in this deployment's instance (however the runner split the work)."""
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        return [entry.dagster_event for run in instance.get_runs() for entry in instance.all_logs(run.run_id)
                if entry.dagster_event is not None]


def test_dagster_run_isolates_a_down_source_and_a_bad_file(tmp_path, monkeypatch):
    from orchestration.runner import run_job

    down = """
[sources.school_mis_c]
path = "inbox/school_mis_c_not_mounted"
[[sources.school_mis_c.files]]
pattern = "*_attendance_*.csv"
layout = "mis-a"
"""
    dep = make_deployment(tmp_path, monkeypatch, extra_sources=down)
    rows = mis_a_rows(C1, C2)
    rows[1][9] = "Q9"
    dep.put("school_mis_a", BAD_NAME, mis_a_file(rows))
    dep.put("social_care", "cin_census_20261128.xml", BILLION_LAUGHS)
    run_job("full_refresh", stream=io.StringIO())
    events = _dagster_events()

    # the source that is down fails its own landing asset, with a message that says what to fix
    failures = {e.step_key: e for e in events if e.event_type_value == "STEP_FAILURE"}
    assert set(failures) == {"landing__school_mis_c"}
    message = str(failures["landing__school_mis_c"].event_specific_data.error)
    assert "school_mis_c" in message and "does not exist" in message

    # the bad files did not fail anything: every other source landed and staged
    succeeded = {e.step_key for e in events if e.event_type_value == "STEP_SUCCESS"}
    materialized = {tuple(e.asset_key.path) for e in events if e.event_type_value == "ASSET_MATERIALIZATION"}
    for sid in SOURCE_IDS:
        assert {f"landing__{sid}", f"staged__{sid}"} <= succeeded, sid
        assert {("landing", sid), ("staged", sid)} <= materialized, sid
    failed_checks = [e.event_specific_data.check_name for e in events
                     if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.event_specific_data.passed]
    assert not [c for c in failed_checks if c in ("rows_reconcile", "staged_contract")], failed_checks
    e = dep.entry(BAD_NAME)
    assert (e["rows_read"], e["rows_staged"], e["rows_quarantined"]) == (4, 3, 1)
    assert dep.entry("cin_census_20261128.xml")["status"] == "failed"
    dep.assert_good_files_loaded()
    dep.assert_every_file_reconciles()
    dep.assert_no_identity_anywhere()
    home = tmp_path / "dagster_home"
    leaks = [(p.name, v) for p in home.rglob("*") if p.is_file() for v in dep.identities
             if v and v.encode() in p.read_bytes()]
    assert leaks == []

    # and the record, signals, flags and outbox were still built for everyone else
    downstream = {("linked", "child_links"), ("record", "child_record"), ("signals", "attendance_measures"),
                  ("signals", "cohort_membership"), ("flags", "absence_flags"), ("outbox", "deliveries")}
    assert downstream - materialized == set(), "one source down stopped the record for every other source"
    dep.ctx.store.dispose()


# --- accepted silently no more: data quality a data team expects ----------------------------------

def issue_rows(dep: Deployment, name: str) -> list[tuple]:
    return sorted((int(r.row_number), r.field) for r in dep.issues(name).itertuples() if not pd.isna(r.row_number))


def issue_text(dep: Deployment, name: str, row: int, fld: str) -> str:
    found = dep.issues(name)
    found = found[(found["row_number"] == row) & (found["field"] == fld)]
    assert len(found) == 1, (row, fld, found.to_dict("records"))
    assert found["source_id"].iloc[0] == dep.sources[name]
    return found["issue"].iloc[0]


def roll_row(dep: Deployment, laestab: str, pupil_id: str) -> dict:
    pupils = dep.ctx.store.read(t.staged_pupils)
    row = pupils[(pupils["laestab"] == laestab) & (pupils["pupil_ref"] == pupil_ref(dep.ctx.keys.token_key,
                                                                                      laestab, pupil_id))]
    assert len(row) == 1
    return row.iloc[0].to_dict()


def test_marks_for_a_school_not_in_schools_toml_refuse_the_file_and_every_row_is_counted(dep):
    name = f"{UNLISTED}_attendance_{STAMP}.csv"
    data = mis_a_file(mis_a_rows(C1, C2))
    dep.put("school_mis_a", name, data)
    dep.load()
    e = dep.entry(name)
    reason = f"school {UNLISTED} is not in schools.toml; add it or fix the file name"
    assert (e["status"], e["rows_read"], e["rows_staged"], e["rows_quarantined"]) == ("failed", 4, 0, 4)
    assert e["error"] == reason
    q = dep.quarantined(name)
    whole = q[q["row_number"].isna()]
    assert len(whole) == 1 and whole["field"].iloc[0] == "laestab" and whole["reason"].iloc[0] == reason
    assert sorted(n for n, _ in only_row_entries(q)) == [1, 2, 3, 4]
    assert set(q.loc[q["row_number"].notna(), "reason"]) == {f"file not read: {reason}"}
    lines = data_lines(data)
    for _, row in q[q["row_number"].notna()].iterrows():
        assert dep.payload(row) == lines[int(row["row_number"])]
    assert dep.marks(UNLISTED).empty
    assert dep.ctx.store.read(t.staged_pupils)["laestab"].eq(UNLISTED).sum() == 0     # no child entered the record
    dep.assert_good_files_loaded()
    dep.assert_every_file_reconciles()
    dep.assert_quarantine_names_source_and_file(name)
    dep.assert_reasons_safe(name)
    dep.assert_no_identity_anywhere()


def test_a_dob_that_cannot_belong_to_the_year_group_and_placeholder_names_are_issues(dep):
    parent_dob = Child("STU-9231", upn(BAD_B[3:], 531), "Rosalind", "Ashdown", dt.date(1986, 5, 14))
    sibling_dob = Child("STU-9232", upn(BAD_B[3:], 532), "Cosmo", "Ashdown", dt.date(2026, 6, 2), "M")
    baby = Child("STU-9233", upn(BAD_B[3:], 533), "Baby Girl", "Featherstonehaugh", dt.date(2016, 12, 5))
    unknown = Child("STU-9234", upn(BAD_B[3:], 534), "Leontyne", "Unknown", dt.date(2017, 1, 19))
    initial = Child("STU-9235", upn(BAD_B[3:], 535), "X", "Blandford", dt.date(2017, 2, 11))
    dep.identities += [v for c in (parent_dob, sibling_dob, baby, unknown, initial) for v in c.identity()
                       if v not in ("Baby Girl", "Unknown", "X")]
    rows = [mis_b_row(parent_dob, "Morning", "/", year="5"), mis_b_row(sibling_dob, "Morning", "/", year="5"),
            mis_b_row(baby, "Morning", "/"), mis_b_row(unknown, "Morning", "/"), mis_b_row(initial, "Morning", "/"),
            mis_b_row(D1, "Morning", "/")]
    data = csv_bytes(MIS_B_ATTENDANCE, rows, bom=True)
    dep.put("school_mis_b", BAD_NAME_B, data)
    dep.load()
    e = dep.entry(BAD_NAME_B)
    assert (e["status"], e["rows_read"], e["rows_staged"], e["rows_quarantined"]) == ("staged", 6, 6, 0)
    assert dep.quarantined(BAD_NAME_B).empty and len(dep.marks(BAD_B)) == 6          # every row kept
    assert issue_rows(dep, BAD_NAME_B) == [(1, "dob"), (2, "dob"), (3, "forename"), (4, "surname"), (5, "forename")]
    assert "too old for year group 5" in issue_text(dep, BAD_NAME_B, 1, "dob")
    assert "too young for year group 5" in issue_text(dep, BAD_NAME_B, 2, "dob")
    assert "placeholder" in issue_text(dep, BAD_NAME_B, 3, "forename")
    for c in (parent_dob, sibling_dob, baby, unknown, initial):
        assert roll_row(dep, BAD_B, c.ref)["name_dob_token"] is None, c.ref           # kept out of name linkage
    assert roll_row(dep, BAD_B, D1.ref)["name_dob_token"] is not None
    assert dep.pupil_identity(BAD_B, parent_dob.ref)["dob"] == "1986-05-14"           # stored (encrypted) as sent
    dep.assert_all_invariants(BAD_NAME_B, data)


def test_social_care_and_camhs_dates_of_birth_are_judged_by_age_without_a_year_group(dep):
    adult = Child("LA90031", "", "Augustina", "Pemberton", dt.date(1979, 2, 1))        # 47 on the extract date
    infant = Child("LA90032", "", "Not Known", "Pemberton", dt.date(2026, 5, 1))        # 6 months, no name yet
    dep.identities += [v for c in (adult, infant) for v in c.identity() if v != "Not Known"]
    name = "sc_persons_20261128.csv"
    data = csv_bytes(SC_PERSONS, [[c.ref, "", "", c.forename, c.surname, c.dob.isoformat(), "F", "", ""]
                                  for c in (adult, infant)])
    dep.put("social_care", name, data)
    dep.load()
    e = dep.entry(name)
    assert (e["status"], e["rows_read"], e["rows_staged"], e["rows_quarantined"]) == ("staged", 2, 2, 0)
    assert issue_rows(dep, name) == [(1, "dob"), (2, "forename")]     # social care holds newborns: 0 is an age
    assert "over 25" in issue_text(dep, name, 1, "dob")
    persons = dep.ctx.store.read(t.staged_sc_persons)
    mine = persons[persons["file_id"] == e["file_id"]]
    assert len(mine) == 2 and mine["name_dob_token"].isna().all()
    dep.assert_all_invariants(name, data)


def test_formula_values_are_issues_stored_as_sent(dep):
    formula = Child("ADN-9131", upn(BAD_A[3:], 431), "@Ottilie", '=HYPERLINK("http://evil.example","x")',
                    dt.date(2016, 3, 3))
    minus = Child("ADN-9132", upn(BAD_A[3:], 432), "Rupert", "-Blackwood", dt.date(2016, 4, 4), "M")
    dep.identities += formula.identity() + minus.identity()
    rows = [mis_a_row(formula, "AM", "/"), mis_a_row(formula, "PM", "/"),
            mis_a_row(minus, "AM", "/", reg="+5W"), mis_a_row(minus, "PM", "/", reg="+5W")]
    data = mis_a_file(rows)
    dep.put("school_mis_a", BAD_NAME, data)
    dep.load()
    e = dep.entry(BAD_NAME)
    assert (e["status"], e["rows_read"], e["rows_staged"], e["rows_quarantined"]) == ("staged", 4, 4, 0)
    # one issue per pupil, on the roll's row (the pupil's latest session)
    assert issue_rows(dep, BAD_NAME) == [(2, "forename"), (2, "surname"), (4, "reg_group"), (4, "surname")]
    assert "formula" in issue_text(dep, BAD_NAME, 2, "surname")
    identity = dep.pupil_identity(BAD_A, formula.ref)
    assert (identity["forename"], identity["surname"]) == (formula.forename, formula.surname)
    assert roll_row(dep, BAD_A, minus.ref)["reg_group"] == "+5W"
    assert roll_row(dep, BAD_A, formula.ref)["name_dob_token"] is not None          # linkage is not affected
    dep.assert_all_invariants(BAD_NAME, data)


def test_a_surname_with_an_embedded_line_break_is_an_issue_and_stored_on_one_line(dep):
    broken = Child("ADN-9141", upn(BAD_A[3:], 441), "Honoria", "Fotheringay\r\nSmythe", dt.date(2016, 7, 7))
    dep.identities += [v for v in broken.identity() if "\n" not in v] + ["Smythe", "Fotheringay Smythe"]
    rows = [mis_a_row(broken, "AM", "/"), mis_a_row(broken, "PM", "/")] + mis_a_rows(C2)
    data = mis_a_file(rows)
    assert data.count(b"\r\n") > 6                                 # the quoted cell really spans lines
    dep.put("school_mis_a", BAD_NAME, data)
    dep.load()
    e = dep.entry(BAD_NAME)
    assert (e["status"], e["rows_read"], e["rows_staged"], e["rows_quarantined"]) == ("staged", 4, 4, 0)
    assert issue_rows(dep, BAD_NAME) == [(2, "surname")]
    assert "line break" in issue_text(dep, BAD_NAME, 2, "surname")
    assert dep.pupil_identity(BAD_A, broken.ref)["surname"] == "Fotheringay Smythe"
    dep.assert_all_invariants(BAD_NAME, data)


def test_a_leaving_date_before_the_admission_date_is_an_issue_and_ignored_for_on_roll(dep):
    from transforms.record import on_roll
    name = f"{BAD_A}_pupils_{STAMP}.csv"
    header = [h for h in MIS_A_PUPILS if h not in ("Former UPN", "Preferred Surname", "Preferred Forename",
                                                     "Postcode", "NHS Number", "Destination LAESTAB")]
    rows = [[c.ref, c.upn, c.surname, c.forename, c.dob.strftime("%d/%m/%Y"), c.sex, year_group(c.dob),
             "03/09/2026", leaving, "N", "N"] for c, leaving in ((C1, "22/07/2026"), (C2, ""))]
    data = csv_bytes(header, rows, encoding="cp1252", crlf=True)
    dep.put("school_mis_a", name, data)
    dep.load()
    e = dep.entry(name)
    assert (e["status"], e["rows_read"], e["rows_staged"], e["rows_quarantined"]) == ("staged", 2, 2, 0)
    assert issue_rows(dep, name) == [(1, "leaving_date")]
    assert "before the admission date" in issue_text(dep, name, 1, "leaving_date")
    pupils = dep.ctx.store.read(t.staged_pupils)
    pupils = pupils[pupils["laestab"] == BAD_A]
    assert len(on_roll(pupils, AS_OF)) == 2                          # the child is not taken off roll
    assert roll_row(dep, BAD_A, C1.ref)["leaving_date"] == dt.date(2026, 7, 22)    # staged as sent
    dep.assert_all_invariants(name, data)


def test_episodes_and_allocations_for_a_person_not_in_the_persons_file_are_issues(dep):
    ghost = "LA99999"
    dep.identities.append(ghost)
    episodes = "sc_episodes_20261128.csv"
    allocations = "sc_allocations_20261128.csv"
    dep.put("social_care", episodes, csv_bytes(SC_EPISODES, [[S1.ref, "EP-7101", "CPP", "2026-03-01", "", ""],
                                                             [ghost, "EP-7102", "CIN", "2026-04-01", "", ""]]))
    dep.put("social_care", allocations, csv_bytes(SC_ALLOCATIONS, [
        [ghost, "W-13", "Kim Worker", "kim.worker@la.example", "T-1", "North", "2026-04-01", ""]]))
    dep.load()
    for name, rows in ((episodes, 2), (allocations, 1)):
        e = dep.entry(name)
        assert (e["status"], e["rows_read"], e["rows_staged"], e["rows_quarantined"]) == ("staged", rows, rows, 0)
    figures = stages.link(dep.ctx)
    assert issue_rows(dep, episodes) == [(2, "person_id")]
    assert issue_rows(dep, allocations) == [(1, "person_id")]
    assert "counts for no child" in issue_text(dep, episodes, 2, "person_id")
    assert figures["data_quality_issues_recorded"] == 2
    before = len(dep.issues())
    stages.link(dep.ctx)                                           # linking again records nothing new
    assert len(dep.issues()) == before
    links = dep.ctx.store.read(t.child_links)
    assert record_ref(dep.ctx.keys.token_key, SC_PERSON_NS, ghost) not in set(links["record_ref"])
    dep.assert_every_file_reconciles()
    dep.assert_good_files_loaded()
    dep.assert_reasons_safe(episodes)
    dep.assert_no_identity_anywhere()
