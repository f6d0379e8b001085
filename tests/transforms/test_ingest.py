"""ingest_file end to end: staged tables, quarantine, reconciliation, roll, privacy."""
import datetime as dt

import pandas as pd
import pytest

from schemas import tables
from schemas.config import Layout, load_config
from sharing.crypto import decrypt_json
from sharing.keys import KeyRing
from sharing.tokens import identifier_token, name_dob_token, token
from transforms.ingest import IngestResult, ingest_file

CFG = load_config()
KEYS = KeyRing(bytes(range(32)), bytes(range(32, 64)))
RECEIVED = dt.datetime(2024, 9, 5, 6, 0, tzinfo=dt.timezone.utc)
FILE_ID = "ab" * 32
MIS_A_HEADER = "Adno,UPN,Legal Surname,Legal Forename,DOB,Gender,Reg Group,Date,Session,Mark,Minutes Late"
MIS_B_HEADER = ("Student ID,UPN,Last Name,First Name,Date of Birth,Sex,Year Group,Registration Form,"
                "Session Date,Session,Attendance Mark,Minutes Late,Updated At")
PUPILS_HEADER = ("Adno,UPN,Former UPN,Legal Surname,Legal Forename,Preferred Surname,Preferred Forename,DOB,"
                 "Gender,Postcode,Year Group,Admission Date,Leaving Date,SEN Provision,FSM Eligible,NHS Number")
CAMHS_HEADER = ("NHSNumber,LocalPatientID,GivenName,FamilyName,BirthDate,Gender,Postcode,ReferralID,"
                "ReferralReceivedDate,ReferralStatus,DischargeDate,ServiceTeam,TeamContact,PrimaryReasonForReferral")
IDENTITY_STRINGS = ("Brontë", "Zoë", "B801200005001", "A801200005001", "03/04/2015", "2015-04-03",
                    "9434765870", "CT1 1AA", "Adno-77", "LPID-9", "PERSON-42")


def ingest(text, layout, file_name, *, encoding="utf-8", eol="\r\n") -> IngestResult:
    data = text.replace("\n", eol).encode(encoding) if isinstance(text, str) else text
    return ingest_file(data, file_name=file_name, source_id="school-a", file_id=FILE_ID,
                       layout=CFG.layout(layout) if isinstance(layout, str) else layout,
                       codes=CFG.codes, keys=KEYS, received_at=RECEIVED)


def lines(header, *rows):
    return "\n".join([header, *rows]) + "\n"


def assert_reconciles(result: IngestResult):
    quarantined_rows = {q.row_number for q in result.quarantined if q.row_number is not None}
    assert result.rows_read == len(result.staged) + result.rows_superseded + len(quarantined_rows)
    assert not quarantined_rows & set(result.staged["row_number"])


def assert_no_plaintext(result: IngestResult, *strings):
    texts = [result.staged.to_csv()] + [df.to_csv() for df in result.extra.values()]
    texts += [q.reason for q in result.quarantined] + [i.issue for i in result.issues]
    texts += [str(q.field) for q in result.quarantined] + [result.file_error or ""]
    for text in texts:
        for s in strings or IDENTITY_STRINGS:
            assert s not in text


def mis_a(adno="Adno-77", date="02/09/2024", session="AM", mark="/", late="", upn="B801200005001"):
    return f"{adno},{upn},Brontë,Zoë,03/04/2015,F,5B,{date},{session},{mark},{late}"


def test_mis_a_marks_staged_with_tokens_and_categories():
    text = lines(MIS_A_HEADER, mis_a(), mis_a(session="PM", mark="N"), mis_a(date="04/09/2023", mark="H", late="5"))
    result = ingest(text, "mis-a", "8864001_attendance_20240904.csv", encoding="cp1252")
    assert result.table == "staged_marks" and result.file_error is None
    assert list(result.staged.columns) == [c.name for c in tables.staged_marks.columns]
    assert_reconciles(result)
    assert result.quarantined == []
    expected_ref = token(KEYS.token_key, "pupil", "8864001:Adno-77")
    assert set(result.staged["pupil_ref"]) == {expected_ref}
    assert set(result.staged["laestab"]) == {"8864001"}
    assert list(result.staged["mark"]) == ["/", "N", "C"]
    assert list(result.staged["category"]) == ["present", "unauthorised", "authorised"]
    assert list(result.staged["session_date"]) == [dt.date(2024, 9, 2), dt.date(2024, 9, 2), dt.date(2023, 9, 4)]
    assert result.staged["minutes_late"].tolist() == [pd.NA, pd.NA, 5]
    # nightly file, no time: 18:00 Europe/London on 4 Sept 2024 (BST) = 17:00 UTC
    assert set(result.staged["recorded_at"]) == {pd.Timestamp("2024-09-04 17:00", tz="UTC")}
    assert list(result.staged["source_id"].unique()) == ["school-a"]
    assert list(result.staged["row_number"]) == [1, 2, 3]
    assert_no_plaintext(result)


def test_intraday_extract_time_and_winter_nightly_time():
    text = lines(MIS_A_HEADER, mis_a(date="02/12/2024"))
    intraday = ingest(text, "mis-a", "8864001_attendance_20241202T0930.csv")
    assert intraday.staged["recorded_at"].tolist() == [pd.Timestamp("2024-12-02 09:30", tz="UTC")]
    nightly = ingest(text, "mis-a", "8864001_attendance_20241202.csv")
    assert nightly.staged["recorded_at"].tolist() == [pd.Timestamp("2024-12-02 18:00", tz="UTC")]


def test_recorded_at_falls_back_to_received_at_without_an_extract_date():
    spec = {"feed": "attendance", "encoding": "cp1252", "date_format": "%d/%m/%Y",
            "filename": r"^(?P<laestab>\d{7})_marks\.csv$", "columns": dict(CFG.layout("mis-a").columns)}
    layout = Layout.from_mapping("custom", spec, "test")
    result = ingest(lines(MIS_A_HEADER, mis_a()), layout, "8864001_marks.csv")
    assert result.staged["recorded_at"].tolist() == [pd.Timestamp(RECEIVED)]


def test_mis_b_bom_updated_at_and_the_roll():
    rows = ["Adno-77,B801200005001,Brontë,Zoë,2015-04-03,F,Year 5,5B,2024-09-02,Morning,/,,2024-09-02T08:50:00",
            "Adno-77,B801200005001,Brontë,Zoë,2015-04-03,F,Year 5,5B,2024-09-02,Afternoon,N,,",
            "S2,A801200005001,Smith,Amy,2015-01-01,F,5,5B,2024-09-02,Morning,L,7,2024-09-02T08:52:00Z"]
    data = b"\xef\xbb\xbf" + lines(MIS_B_HEADER, *rows).encode("utf-8")
    result = ingest(data, "mis-b", "8864001_attendance_20240902T1500.csv")
    assert_reconciles(result)
    assert result.quarantined == []
    assert result.staged["recorded_at"].tolist() == [
        pd.Timestamp("2024-09-02 07:50", tz="UTC"),     # Updated At, naive = London BST
        pd.Timestamp("2024-09-02 14:00", tz="UTC"),     # empty Updated At: extract time 15:00 BST
        pd.Timestamp("2024-09-02 08:52", tz="UTC")]
    roll = result.extra["staged_pupils"]
    assert list(roll.columns) == [c.name for c in tables.staged_pupils.columns]
    assert len(roll) == 2
    pupil = roll.set_index("pupil_ref").loc[token(KEYS.token_key, "pupil", "8864001:Adno-77")]
    assert pupil["upn_token"] == identifier_token(KEYS.token_key, "upn", "B801200005001")
    assert pupil["upn_valid"] == True  # noqa: E712  (pandas boolean)
    assert pupil["name_dob_token"] == name_dob_token(KEYS.token_key, "Zoë", "Brontë", dt.date(2015, 4, 3))
    assert pd.isna(pupil["sen_provision"]) and pd.isna(pupil["fsm_eligible"])
    assert (pupil["year_group"], pupil["reg_group"], pupil["extract_date"]) == ("5", "5B", dt.date(2024, 9, 2))
    assert decrypt_json(KEYS.identity_key, pupil["identity_enc"]) == {
        "school_pupil_id": "Adno-77", "upn": "B801200005001", "surname": "Brontë", "forename": "Zoë",
        "dob": "2015-04-03"}
    assert pupil["key_id"] == KEYS.identity_key_id
    # S2's UPN has a bad check letter: on the roll, kept out of linkage, reported
    other = roll.set_index("pupil_ref").loc[token(KEYS.token_key, "pupil", "8864001:S2")]
    assert other["upn_token"] is None and other["upn_valid"] == False  # noqa: E712
    assert [(i.row_number, i.field, i.issue) for i in result.issues] == [
        (3, "upn", "UPN check letter invalid; kept out of linkage")]
    assert_no_plaintext(result)


def test_roll_keeps_a_pupil_whose_only_mark_was_quarantined():
    result = ingest(lines(MIS_A_HEADER, mis_a(mark="n")), "mis-a", "8864001_attendance_20240904.csv")
    assert result.staged.empty and len(result.extra["staged_pupils"]) == 1
    assert_reconciles(result)


def test_marks_without_identity_give_no_roll():
    text = lines("pupil_id,session_date,session,mark,minutes_late,last_modified",
                 "77,2024-09-02,AM,/,,2024-09-02T08:50:00")
    result = ingest(text, "odbc-marks", "8864001_odbc-marks_20240902T0900_1.csv")
    assert len(result.staged) == 1 and result.extra == {}


def test_conflicting_marks_for_one_session_quarantine_both_rows():
    text = lines(MIS_A_HEADER, mis_a(mark="N"), mis_a(session="PM"), mis_a(mark="I"))
    result = ingest(text, "mis-a", "8864001_attendance_20240904.csv")
    assert list(result.staged["row_number"]) == [2]
    conflict = "conflicting marks in one file for the same pupil, date and session (rows 1, 3)"
    assert [(q.row_number, q.field, q.reason) for q in result.quarantined] == [
        (1, "mark", conflict), (3, "mark", conflict)]
    assert result.quarantined[0].raw.startswith(b"Adno-77,B801200005001,")
    assert_reconciles(result)


def test_same_session_repeated_with_other_differences_is_a_conflict_too():
    text = lines(MIS_A_HEADER, mis_a(mark="L", late="5"), mis_a(mark="L", late="10"))
    result = ingest(text, "mis-a", "8864001_attendance_20240904.csv")
    assert result.staged.empty
    assert {q.reason for q in result.quarantined} == {
        "conflicting rows in one file for the same pupil, date and session (rows 1, 2)"}


def mis_b(mark="/", session="Morning", updated="2024-09-04T09:05:00") -> str:
    return f"STU-1,B801200005001,Brontë,Zoë,2015-04-03,F,5,5B,2024-09-04,{session},{mark},,{updated}"


def test_a_later_edit_of_a_session_in_the_same_file_supersedes_the_earlier_mark():
    text = lines(MIS_B_HEADER, mis_b("N", updated="2024-09-04T09:05:00"), mis_b("/", "Afternoon"),
                 mis_b("I", updated="2024-09-04T09:40:00"))
    result = ingest(text, "mis-b", "8864001_attendance_20240904T1000.csv")
    assert sorted(result.staged["row_number"]) == [2, 3]
    assert result.staged.set_index("row_number").loc[3, "mark"] == "I"
    assert result.rows_superseded == 1 and result.quarantined == []
    assert_reconciles(result)


def test_two_edits_of_a_session_at_the_same_time_are_a_conflict_not_a_supersession():
    text = lines(MIS_B_HEADER, mis_b("N"), mis_b("I"))
    result = ingest(text, "mis-b", "8864001_attendance_20240904T1000.csv")
    assert result.staged.empty and result.rows_superseded == 0
    assert {q.reason for q in result.quarantined} == {
        "conflicting marks in one file for the same pupil, date and session (rows 1, 2)"}
    assert_reconciles(result)


def test_exact_duplicates_keep_the_first():
    text = lines(MIS_A_HEADER, mis_a(), mis_a())
    result = ingest(text, "mis-a", "8864001_attendance_20240904.csv")
    assert list(result.staged["row_number"]) == [1]
    assert [(q.row_number, q.reason) for q in result.quarantined] == [(2, "duplicate of row 1")]
    assert_reconciles(result)


@pytest.mark.parametrize("name, text, error, rows_read", [
    ("empty", b"", "empty file", 0),
    ("missing column", lines(MIS_A_HEADER.replace(",Session", ""), "1,2,3,4,5,6,7,8,9,10"),
     "missing required column 'Session' (field session)", 1),
])
def test_whole_file_refusals_reconcile(name, text, error, rows_read):
    result = ingest(text, "mis-a", "8864001_attendance_20240904.csv")
    assert result.file_error == error and result.rows_read == rows_read
    assert result.staged.empty and list(result.staged.columns) == [c.name for c in tables.staged_marks.columns]
    assert_reconciles(result)


def test_file_name_that_does_not_match_the_layout_refuses_the_file():
    result = ingest(lines(MIS_A_HEADER, mis_a(), mis_a(session="PM")), "mis-a", "kent_attendance.csv")
    assert result.file_error == "file name does not match the pattern of layout mis-a"
    assert result.rows_read == 2 and {q.row_number for q in result.quarantined} == {None, 1, 2}
    assert_reconciles(result)


def test_impossible_extract_date_in_file_name():
    result = ingest(lines(MIS_A_HEADER, mis_a()), "mis-a", "8864001_attendance_20240231.csv")
    assert result.file_error == "file name holds an impossible extract date or time"


def test_every_row_problem_reconciles():
    text = lines(MIS_A_HEADER, mis_a(), mis_a(date="31/02/2026"), mis_a(mark="H"), mis_a(mark="zz"),
                 mis_a(session="PM", mark="\x00"), mis_a(adno="9"), mis_a(adno="9"), "1,2,3")
    result = ingest(text, "mis-a", "8864001_attendance_20240904.csv")
    assert result.rows_read == 8 and list(result.staged["row_number"]) == [1, 6]
    assert_reconciles(result)
    assert_no_plaintext(result)


def test_pupils_feed_with_invalid_identifiers_is_staged_out_of_linkage():
    rows = ["Adno-77,A801200005001,B801200005001,Brontë,Zoë,,,03/04/2015,F,ct11aa,Year 5,01/09/2020,,E,N,9434765871",
            "78,B801200005001,,Smith,Amy,,,01/01/2020,M,,R,01/09/2024,,X,maybe,9434765870"]
    text = lines(PUPILS_HEADER, *rows)
    result = ingest(text, "mis-a-pupils", "8864001_pupils_20240904.csv", encoding="cp1252")
    assert result.table == "staged_pupils" and result.quarantined == []
    assert_reconciles(result)
    first, second = result.staged.iloc[0], result.staged.iloc[1]
    assert first["upn_token"] is None and first["upn_valid"] == False  # noqa: E712
    assert first["former_upn_token"] == identifier_token(KEYS.token_key, "upn", "B801200005001")
    assert first["nhs_token"] is None and first["nhs_valid"] == False  # noqa: E712
    assert (first["sen_provision"], first["fsm_eligible"], first["extract_date"]) == ("E", False, dt.date(2024, 9, 4))
    assert second["nhs_token"] == identifier_token(KEYS.token_key, "nhs", "9434765870")
    assert (second["year_group"], second["sen_provision"]) == ("R", None)
    assert pd.isna(second["fsm_eligible"])
    assert sorted((i.row_number, i.field, i.issue) for i in result.issues) == [
        (1, "nhs_number", "NHS number check digit invalid; kept out of linkage"),
        (1, "upn", "UPN check letter invalid; kept out of linkage"),
        (2, "fsm_eligible", "fsm_eligible is not one of Y/N, true/false, 1/0; left empty"),
        (2, "sen_provision", "sen_provision is not a recognised SEN provision (N, K or E); left empty"),
    ]
    identity = decrypt_json(KEYS.identity_key, first["identity_enc"])
    assert identity["postcode"] == "CT1 1AA" and identity["upn"] == "A801200005001"
    assert_no_plaintext(result)


def test_sc_persons_restricted_and_person_ref():
    header = "PersonID,UPN,NHSNumber,Forename,Surname,DOB,Sex,Postcode,Restricted"
    rows = ["PERSON-42,B801200005001,9434765870,Zoë,Brontë,2015-04-03,F,CT1 1AA,Y",
            "PERSON-43,,,Amy,Smith,2015-01-01,M,,"]
    result = ingest(lines(header, *rows), "sc-persons", "sc_persons_20240904.csv")
    assert list(result.staged.columns) == [c.name for c in tables.staged_sc_persons.columns]
    assert list(result.staged["person_ref"]) == [token(KEYS.token_key, "sc_person", "PERSON-42"),
                                                 token(KEYS.token_key, "sc_person", "PERSON-43")]
    assert result.staged["restricted"].tolist() == [True, False]
    assert result.staged["upn_valid"].tolist() == [True, pd.NA]
    assert_no_plaintext(result)


def test_sc_episodes_and_allocations():
    episodes = ingest(lines("PersonID,EpisodeID,EpisodeType,StartDate,EndDate,LegalStatus",
                            "PERSON-42,E1,CLA,2024-01-01,,C2", "PERSON-42,E2,CIN,2023-01-01,2023-06-30,"),
                      "sc-episodes", "sc_episodes_20240904.csv")
    assert list(episodes.staged.columns) == [c.name for c in tables.staged_sc_episodes.columns]
    assert set(episodes.staged["person_ref"]) == {token(KEYS.token_key, "sc_person", "PERSON-42")}
    assert list(episodes.staged["end_date"]) == [None, dt.date(2023, 6, 30)]
    allocations = ingest(lines("PersonID,WorkerID,WorkerName,WorkerEmail,TeamID,TeamName,StartDate,EndDate",
                               "PERSON-42,W1,Sam Worker,sam@la.gov.uk,T1,Team One,2024-01-01,"),
                         "sc-allocations", "sc_allocations_20240904.csv")
    assert list(allocations.staged.columns) == [c.name for c in tables.staged_sc_allocations.columns]
    assert allocations.staged.iloc[0]["worker_email"] == "sam@la.gov.uk"
    assert_no_plaintext(episodes)
    assert_no_plaintext(allocations)


def test_camhs_clinical_reason_never_present():
    rows = ["9434765870,LPID-9,Zoë,Brontë,2015-04-03,2,CT1 1AA,R1,2026-01-05,open,,CAMHS East,duty@nhs.net,"
            "Low mood and anxiety",
            "9434765870,LPID-9,Zoë,Brontë,2015-04-03,2,CT1 1AA,R2,2026-01-05,unknown,,CAMHS East,duty@nhs.net,"
            "Self harm"]
    result = ingest(lines(CAMHS_HEADER, *rows), "camhs-referrals", "camhs_referrals_20260106.csv")
    assert list(result.staged.columns) == [c.name for c in tables.staged_camhs_referrals.columns]
    assert result.staged.iloc[0]["patient_ref"] == token(KEYS.token_key, "camhs_patient", "LPID-9")
    assert result.staged.iloc[0]["sex"] == "F"
    assert [(q.row_number, q.field) for q in result.quarantined] == [(2, "referral_status")]
    everything = [result.staged.to_csv()] + [q.reason for q in result.quarantined]
    everything += [q.raw.decode() for q in result.quarantined]
    everything += [decrypt_json(KEYS.identity_key, b).__repr__() for b in result.staged["identity_enc"]]
    for text in everything:
        assert "Low mood" not in text and "Self harm" not in text and "PrimaryReason" not in text
    assert_no_plaintext(result)
    assert_reconciles(result)


def test_identical_files_stage_identical_tokens():
    text = lines(MIS_A_HEADER, mis_a())
    a = ingest(text, "mis-a", "8864001_attendance_20240904.csv")
    b = ingest(text, "mis-a", "8864001_attendance_20240904.csv")
    assert a.staged.equals(b.staged)


# --- data quality a data team expects ---------------------------------------------------------------

def test_a_school_not_in_schools_toml_refuses_the_file_and_counts_every_row():
    text = lines(MIS_A_HEADER, mis_a(), mis_a(session="PM"))
    data = text.replace("\n", "\r\n").encode("utf-8")
    kwargs = dict(file_name="8864001_attendance_20240904.csv", source_id="school-a", file_id=FILE_ID,
                  layout=CFG.layout("mis-a"), codes=CFG.codes, keys=KEYS, received_at=RECEIVED)
    result = ingest_file(data, schools={"8864002", "8864003"}, **kwargs)
    reason = "school 8864001 is not in schools.toml; add it or fix the file name"
    assert result.file_error == reason and result.staged.empty and result.extra == {}
    assert [(q.row_number, q.field, q.reason) for q in result.quarantined] == [
        (None, "laestab", reason), (1, None, f"file not read: {reason}"), (2, None, f"file not read: {reason}")]
    assert result.rows_read == 2
    assert_reconciles(result)
    assert len(ingest_file(data, schools={"8864001"}, **kwargs).staged) == 2
    assert len(ingest_file(data, schools=set(), **kwargs).staged) == 2          # no schools listed: not checked


def test_roll_from_attendance_keeps_an_implausible_dob_out_of_the_name_key():
    # Year 5 in 2024/25: born 1 Sep 2014 .. 31 Aug 2015, a year either side allowed. 1984: a parent's.
    rows = ["S1,A801200005001,Smith,Amy,1984-06-01,F,5,5B,2024-09-02,Morning,/,,",
            "S2,A801200005001,Smith,Baby Girl,2015-01-01,F,5,5B,2024-09-02,Morning,/,,",
            "S3,A801200005001,Smith,Bea,2015-01-01,F,5,5B,2024-09-02,Morning,/,,"]
    result = ingest(lines(MIS_B_HEADER, *rows), "mis-b", "8864001_attendance_20240902T1500.csv")
    assert len(result.staged) == 3 and result.quarantined == []
    roll = result.extra["staged_pupils"].set_index("row_number")
    assert roll.loc[1, "name_dob_token"] is None and roll.loc[2, "name_dob_token"] is None
    assert roll.loc[3, "name_dob_token"] == name_dob_token(KEYS.token_key, "Bea", "Smith", dt.date(2015, 1, 1))
    found = [(i.row_number, i.field) for i in result.issues if i.field in ("dob", "forename")]
    assert found == [(1, "dob"), (2, "forename")]
    assert_no_plaintext(result, "1984", "Baby Girl")


def test_pupils_with_a_leaving_date_before_admission_are_staged_with_an_issue():
    rows = ["77,B801200005001,,Brontë,Zoë,,,03/04/2015,F,,Year 5,01/09/2020,31/08/2019,N,N,",
            "78,B801200005001,,Smith,Amy,,,01/01/2015,F,,Year 5,01/09/2020,20/07/2024,N,N,"]
    result = ingest(lines(PUPILS_HEADER, *rows), "mis-a-pupils", "8864001_pupils_20240904.csv", encoding="cp1252")
    assert len(result.staged) == 2 and result.quarantined == []
    assert [(i.row_number, i.field, i.issue) for i in result.issues] == [
        (1, "leaving_date", "leaving date is before the admission date; ignored when deciding who is on roll")]
    assert result.staged.iloc[0]["leaving_date"] == dt.date(2019, 8, 31)       # staged as sent
