"""Reading files through their layouts: encodings, headers, rows, dates, sessions, marks."""
import datetime as dt

import pytest

from schemas.config import Layout, load_config
from transforms.read import read_layout

CFG = load_config()
CODES = CFG.codes
MIS_A = CFG.layout("mis-a")
MIS_B = CFG.layout("mis-b")
MIS_A_HEADER = "Adno,UPN,Legal Surname,Legal Forename,DOB,Gender,Reg Group,Date,Session,Mark,Minutes Late"
MIS_B_HEADER = ("Student ID,UPN,Last Name,First Name,Date of Birth,Sex,Year Group,Registration Form,"
                "Session Date,Session,Attendance Mark,Minutes Late,Updated At")
PERSONS_HEADER = "PersonID,UPN,NHSNumber,Forename,Surname,DOB,Sex,Postcode,Restricted"
CAMHS_HEADER = ("NHSNumber,LocalPatientID,GivenName,FamilyName,BirthDate,Gender,Postcode,ReferralID,"
                "ReferralReceivedDate,ReferralStatus,DischargeDate,ServiceTeam,TeamContact,PrimaryReasonForReferral")


def mis_a_row(adno="1001", date="02/09/2024", session="AM", mark="/", late="", surname="Smith", forename="Amy",
              dob="03/04/2015", upn="B801200005001"):
    return f"{adno},{upn},{surname},{forename},{dob},F,5B,{date},{session},{mark},{late}"


def file_of(header, rows, *, eol="\r\n", encoding="cp1252", final_eol=True):
    text = eol.join([header, *rows]) + (eol if final_eol else "")
    return text.encode(encoding)


def reasons(result):
    return {q.row_number: q.reason for q in result.quarantined}


def reconciles(result):
    quarantined_rows = {q.row_number for q in result.quarantined if q.row_number is not None}
    return result.rows_read == len(result.frame) + len(quarantined_rows)


# --- encodings and line endings --------------------------------------------------------------

def test_windows_1252_names_with_pound_and_accents():
    data = file_of(MIS_A_HEADER, [mis_a_row(surname="Brontë", forename="Zoé £")])
    result = read_layout(data, MIS_A, CODES)
    assert result.file_error is None and result.quarantined == []
    row = result.frame.iloc[0]
    assert (row["surname"], row["forename"]) == ("Brontë", "Zoé £")
    assert row["session_date"] == dt.date(2024, 9, 2) and row["dob"] == dt.date(2015, 4, 3)
    assert (row["mark"], row["category"]) == ("/", "present")


def test_utf8_bom_mis_b_with_session_labels_and_updated_at():
    rows = ["S1,B801200005001,Brontë,Zoë,2015-04-03,F,5,5B,2024-09-02,Morning,L,12,2024-09-02T08:55:00",
            "S1,B801200005001,Brontë,Zoë,2015-04-03,F,5,5B,2024-09-02,Afternoon,N,,2024-09-02T13:20:00+01:00"]
    data = b"\xef\xbb\xbf" + file_of(MIS_B_HEADER, rows, encoding="utf-8")
    result = read_layout(data, MIS_B, CODES)
    assert result.file_error is None and result.quarantined == []
    assert list(result.frame["session"]) == ["AM", "PM"]
    assert list(result.frame["minutes_late"]) == [12, None]
    assert result.frame.iloc[0]["surname"] == "Brontë"
    # 08:55 BST (naive, Europe/London) is 07:55 UTC; 13:20+01:00 is 12:20 UTC.
    assert result.frame.iloc[0]["updated_at"] == dt.datetime(2024, 9, 2, 7, 55, tzinfo=dt.timezone.utc)
    assert result.frame.iloc[1]["updated_at"] == dt.datetime(2024, 9, 2, 12, 20, tzinfo=dt.timezone.utc)


def test_bom_file_read_as_utf8_even_under_a_plain_utf8_layout():
    data = b"\xef\xbb\xbf" + file_of(PERSONS_HEADER, ["P1,,,Zoë,Brontë,2015-04-03,F,CT1 1AA,"], encoding="utf-8")
    result = read_layout(data, CFG.layout("sc-persons"), CODES)
    assert result.file_error is None
    assert result.frame.iloc[0]["forename"] == "Zoë"


def test_lf_and_crlf_read_the_same():
    rows = [mis_a_row(), mis_a_row(session="PM", mark="N")]
    crlf = read_layout(file_of(MIS_A_HEADER, rows, eol="\r\n"), MIS_A, CODES)
    lf = read_layout(file_of(MIS_A_HEADER, rows, eol="\n"), MIS_A, CODES)
    assert crlf.frame.equals(lf.frame) and len(lf.frame) == 2


def test_a_line_that_is_not_windows_1252_quarantines_that_row_only():
    data = file_of(MIS_A_HEADER, [mis_a_row(adno="1"), mis_a_row(adno="2"), mis_a_row(adno="3")])
    data = data.replace(b"2,B801", b"2\x81,B801")       # 0x81 is undefined in Windows-1252
    result = read_layout(data, MIS_A, CODES)
    assert list(result.frame["row_number"]) == [1, 3]
    assert reasons(result) == {2: "row is not valid cp1252 text (in school_pupil_id)"}
    assert result.quarantined[0].raw == b"2\x81,B801200005001,Smith,Amy,03/04/2015,F,5B,02/09/2024,AM,/,"
    assert reconciles(result)


def test_windows_1252_bytes_under_a_utf8_layout_quarantine_the_rows_with_them():
    text = file_of(PERSONS_HEADER, ["P1,,,Zoé,Smith,2015-04-03,F,,", "P2,,,Amy,Smith,2015-04-03,F,,"])
    result = read_layout(text, CFG.layout("sc-persons"), CODES)
    assert reasons(result) == {1: "row is not valid utf-8 text (in forename)"}
    assert list(result.frame["person_id"]) == ["P2"]


def test_header_that_cannot_be_decoded_refuses_the_file():
    data = ("PersonID,UPN,NHSNumber,Forename,Surname,DOB,Sex,Postcode,Restrict\xe9\n"
            "P1,,,Amy,Smith,2015-04-03,F,,\n").encode("cp1252")
    result = read_layout(data, CFG.layout("sc-persons"), CODES)
    assert result.file_error == "file is not valid utf-8: the header row cannot be decoded"
    assert result.rows_read == 1 and result.frame.empty
    assert {q.row_number for q in result.quarantined} == {None, 1}
    assert reconciles(result)


# --- header ----------------------------------------------------------------------------------

def test_missing_required_column_refuses_the_file_naming_it():
    header = MIS_A_HEADER.replace(",Mark", "")
    rows = [mis_a_row().rsplit(",", 2)[0] + ","]
    result = read_layout(file_of(header, rows * 2), MIS_A, CODES)
    assert result.file_error == "missing required column 'Mark' (field mark)"
    whole = [q for q in result.quarantined if q.row_number is None]
    assert whole[0].field == "mark" and whole[0].raw == header.encode()
    assert result.rows_read == 2 and reconciles(result)
    assert all(q.reason.startswith("file not read: missing required column 'Mark'")
               for q in result.quarantined if q.row_number)


def test_missing_optional_column_is_fine():
    header = ("Adno,UPN,Legal Surname,Legal Forename,Preferred Surname,Preferred Forename,DOB,Gender,"
              "Year Group,Admission Date,Leaving Date,SEN Provision,FSM Eligible")
    row = "1001,B801200005001,Smith,Amy,,,03/04/2015,F,Year 5,01/09/2020,,K,Y"
    result = read_layout(file_of(header, [row]), CFG.layout("mis-a-pupils"), CODES)
    assert result.file_error is None
    got = result.frame.iloc[0]
    assert (got["nhs_number"], got["postcode"], got["destination_laestab"]) == (None, None, None)
    assert (got["year_group"], got["sen_provision"], got["fsm_eligible"]) == ("5", "K", True)


def test_extra_column_is_ignored():
    header = MIS_A_HEADER + ",Ethnicity"
    result = read_layout(file_of(header, [mis_a_row() + ",WBRI"]), MIS_A, CODES)
    assert result.file_error is None and len(result.frame) == 1
    assert "Ethnicity" not in result.frame.columns


def test_renamed_column_is_missing_until_the_layout_maps_it():
    header = MIS_A_HEADER.replace("Legal Surname", "Surname")
    data = file_of(header, [mis_a_row()])
    assert read_layout(data, MIS_A, CODES).file_error == "missing required column 'Legal Surname' (field surname)"
    spec = {"feed": "attendance", "encoding": "cp1252", "date_format": "%d/%m/%Y",
            "columns": {**MIS_A.columns, "surname": "Surname"}}
    renamed = Layout.from_mapping("school-x", spec, "test")
    result = read_layout(data, renamed, CODES)
    assert result.file_error is None and result.frame.iloc[0]["surname"] == "Smith"


def test_header_names_match_despite_case_and_spaces():
    header = MIS_A_HEADER.replace("Legal Surname", " legal  surname ")
    assert read_layout(file_of(header, [mis_a_row()]), MIS_A, CODES).file_error is None


def test_wrong_delimiter_shows_as_missing_columns_with_a_hint():
    data = file_of(MIS_A_HEADER.replace(",", ";"), [mis_a_row().replace(",", ";")])
    result = read_layout(data, MIS_A, CODES)
    assert result.file_error.startswith("missing required columns 'Adno' (field school_pupil_id)")
    assert result.file_error.endswith("the header has one column: is the delimiter ',' right?")


def test_empty_file_and_header_only():
    for data in (b"", b"\r\n", b"\xef\xbb\xbf"):
        result = read_layout(data, MIS_A, CODES)
        assert result.file_error == "empty file" and result.rows_read == 0
        assert [(q.row_number, q.reason) for q in result.quarantined] == [(None, "empty file")]
    header_only = read_layout(file_of(MIS_A_HEADER, []), MIS_A, CODES)
    assert header_only.file_error is None and header_only.rows_read == 0 and header_only.quarantined == []


# --- rows ------------------------------------------------------------------------------------

def test_impossible_date_quarantines_the_row_naming_the_field():
    data = file_of(MIS_A_HEADER, [mis_a_row(date="31/02/2026"), mis_a_row(session="PM")])
    result = read_layout(data, MIS_A, CODES)
    [q] = result.quarantined
    assert (q.row_number, q.field) == (1, "session_date")
    assert q.reason == "session_date is not a valid date in the format dd/mm/yyyy"
    assert list(result.frame["row_number"]) == [2]


def test_impossible_date_of_birth_is_named_without_its_value():
    result = read_layout(file_of(MIS_A_HEADER, [mis_a_row(dob="30/02/2015")]), MIS_A, CODES)
    [q] = result.quarantined
    assert q.field == "dob" and "30/02/2015" not in q.reason


def test_exact_duplicate_row_is_quarantined_naming_the_first():
    data = file_of(MIS_A_HEADER, [mis_a_row(), mis_a_row(session="PM"), mis_a_row()])
    result = read_layout(data, MIS_A, CODES)
    assert reasons(result) == {3: "duplicate of row 1"}
    assert list(result.frame["row_number"]) == [1, 2]


def test_truncated_last_line():
    data = file_of(MIS_A_HEADER, [mis_a_row(), "1002,B801200005001,Sm"], final_eol=False)
    result = read_layout(data, MIS_A, CODES)
    assert reasons(result) == {2: "row has 3 fields, the header has 11 (truncated row)"}
    assert reconciles(result)


def test_row_with_more_fields_than_the_header():
    data = file_of(MIS_A_HEADER, [mis_a_row(surname="Smith,Jones"), mis_a_row(session="PM") + ",,"])
    result = read_layout(data, MIS_A, CODES)
    assert reasons(result) == {1: "row has 12 fields, the header has 11 (an unquoted delimiter inside a value?)"}
    assert list(result.frame["row_number"]) == [2]      # trailing empty fields are harmless


def test_nul_byte_quarantines_the_row():
    data = file_of(MIS_A_HEADER, [mis_a_row(surname="Sm\x00ith"), mis_a_row(session="PM")])
    result = read_layout(data, MIS_A, CODES)
    assert reasons(result) == {1: "row contains a NUL byte"}
    assert len(result.frame) == 1


def test_quoted_values_with_delimiter_and_line_break():
    rows = ['1001,B801200005001,"Smith, Jones","Amy\r\nMay",03/04/2015,F,5B,02/09/2024,AM,/,',
            mis_a_row(session="PM")]
    result = read_layout(file_of(MIS_A_HEADER, rows), MIS_A, CODES)
    assert result.quarantined == []
    assert list(result.frame["row_number"]) == [1, 2]
    assert result.frame.iloc[0]["surname"] == "Smith, Jones"


def test_stray_quote_loses_one_row_not_the_rest_of_the_file():
    rows = [mis_a_row(), '1002,B801200005001,"Smith,Amy,03/04/2015,F,5B,02/09/2024,AM,/,',
            mis_a_row(adno="1003"), mis_a_row(adno="1004")]
    result = read_layout(file_of(MIS_A_HEADER, rows), MIS_A, CODES)
    assert reasons(result) == {2: "row has an unbalanced quote and could not be split into fields"}
    assert list(result.frame["school_pupil_id"]) == ["1001", "1003", "1004"]
    assert reconciles(result)


def test_blank_lines_are_not_rows():
    rows = [mis_a_row(), "", mis_a_row(session="PM")]
    result = read_layout(file_of(MIS_A_HEADER, rows), MIS_A, CODES)
    assert result.rows_read == 2 and list(result.frame["row_number"]) == [1, 2]


def test_unknown_session_label():
    result = read_layout(file_of(MIS_A_HEADER, [mis_a_row(session="Evening")]), MIS_A, CODES)
    [q] = result.quarantined
    assert (q.field, q.reason) == ("session", "session is not one of the layout's session labels (AM, PM)")


def test_required_field_empty():
    result = read_layout(file_of(MIS_A_HEADER, [mis_a_row(mark="")]), MIS_A, CODES)
    assert reasons(result) == {1: "required field mark is empty"}


def test_lenient_fields_become_issues():
    result = read_layout(file_of(MIS_A_HEADER, [mis_a_row(late="ten")]), MIS_A, CODES)
    assert result.quarantined == [] and result.frame.iloc[0]["minutes_late"] is None
    [issue] = result.issues
    assert (issue.row_number, issue.field, issue.issue) == (1, "minutes_late",
                                                            "minutes_late is not a whole number; left empty")


# --- marks -----------------------------------------------------------------------------------

EXPECTED_CATEGORY = {
    "/": "present", "\\": "present", "L": "present",
    "K": "aea", "V": "aea", "P": "aea", "W": "aea", "B": "aea",
    "C": "authorised", "C1": "authorised", "C2": "authorised", "E": "authorised", "I": "authorised",
    "M": "authorised", "J1": "authorised", "S": "authorised", "T": "authorised", "R": "authorised",
    "G": "unauthorised", "N": "unauthorised", "O": "unauthorised", "U": "unauthorised",
    "D": "not_possible", "X": "not_possible", "Q": "not_possible", "Y1": "not_possible", "Y2": "not_possible",
    "Y3": "not_possible", "Y4": "not_possible", "Y5": "not_possible", "Y6": "not_possible",
    "Y7": "not_possible", "Z": "not_possible", "#": "not_possible",
}


def test_every_current_code_and_its_category():
    rows = [mis_a_row(adno=str(i), mark=code) for i, code in enumerate(EXPECTED_CATEGORY)]
    result = read_layout(file_of(MIS_A_HEADER, rows), MIS_A, CODES)
    assert result.quarantined == []
    assert dict(zip(result.frame["mark"], result.frame["category"])) == EXPECTED_CATEGORY


@pytest.mark.parametrize("mark, day, expected", [
    ("H", "04/09/2023", ("C", "authorised")),
    ("J", "04/09/2023", ("J1", "authorised")),
    ("Y", "04/09/2023", ("Y7", "not_possible")),
    ("H", "18/08/2024", ("C", "authorised")),
])
def test_withdrawn_codes_before_withdrawal_map_to_their_successor(mark, day, expected):
    result = read_layout(file_of(MIS_A_HEADER, [mis_a_row(mark=mark, date=day)]), MIS_A, CODES)
    assert result.quarantined == []
    assert (result.frame.iloc[0]["mark"], result.frame.iloc[0]["category"]) == expected


def test_withdrawn_code_after_withdrawal_is_quarantined():
    result = read_layout(file_of(MIS_A_HEADER, [mis_a_row(mark="H", date="02/09/2024")]), MIS_A, CODES)
    [q] = result.quarantined
    assert q.field == "mark"
    assert q.reason == "mark 'H' was withdrawn on 2024-08-19 and cannot be used on a later session"


def test_new_code_before_it_came_into_force():
    result = read_layout(file_of(MIS_A_HEADER, [mis_a_row(mark="C2", date="04/09/2023")]), MIS_A, CODES)
    assert reasons(result) == {1: "mark 'C2' is not in force before 2024-08-19"}


def test_lower_case_and_unknown_codes():
    rows = [mis_a_row(adno="1", mark="n"), mis_a_row(adno="2", mark="c1"), mis_a_row(adno="3", mark="A"),
            mis_a_row(adno="4", mark="Smith")]
    result = read_layout(file_of(MIS_A_HEADER, rows), MIS_A, CODES)
    assert reasons(result) == {
        1: "mark 'n' is lower case; codes are upper case ('N')",
        2: "mark 'c1' is lower case; codes are upper case ('C1')",
        3: "mark 'A' is not a DfE attendance code",
        4: "mark is not a DfE attendance code",       # a long value is never echoed
    }


def test_mark_is_stripped():
    result = read_layout(file_of(MIS_A_HEADER, [mis_a_row(mark=" N ")]), MIS_A, CODES)
    assert result.frame.iloc[0]["mark"] == "N"


# --- other feeds -----------------------------------------------------------------------------

def test_restricted_parsing():
    rows = ["P1,,,A,B,2015-01-01,F,,Y", "P2,,,A,B,2015-01-01,F,,N", "P3,,,A,B,2015-01-01,F,,",
            "P4,,,A,B,2015-01-01,F,,y", "P5,,,A,B,2015-01-01,F,,maybe"]
    result = read_layout(file_of(PERSONS_HEADER, rows, encoding="utf-8"), CFG.layout("sc-persons"), CODES)
    assert dict(zip(result.frame["person_id"], result.frame["restricted"])) == {
        "P1": True, "P2": False, "P3": False, "P4": True}
    [q] = result.quarantined
    assert (q.row_number, q.field, q.reason) == (5, "restricted",
                                                 "restricted is not one of Y/N, true/false, 1/0")


def test_camhs_value_map_and_clinical_column_dropped():
    rows = ["9434765870,L1,Amy,Smith,2015-04-03,2,CT1 1AA,R1,2026-01-05,Open,,Team A,a@nhs.net,Low mood",
            "9434765870,L2,Amy,Smith,2015-04-03,1,CT1 1AA,R2,2026-13-05,open,,Team A,a@nhs.net,Self harm"]
    result = read_layout(file_of(CAMHS_HEADER, rows, encoding="utf-8"), CFG.layout("camhs-referrals"), CODES)
    assert "PrimaryReasonForReferral" not in result.frame.columns
    row = result.frame.iloc[0]
    assert (row["sex"], row["referral_status"]) == ("F", "open")
    [q] = result.quarantined
    assert q.field == "referral_date"
    assert b"Self harm" not in q.raw and q.raw.startswith(b"9434765870,L2,")
    assert "Low mood" not in result.frame.to_csv()


def test_camhs_unsplittable_row_payload_is_withheld():
    rows = ["9434765870,L1,Amy,Smith,2015-04-03,2,CT1 1AA,R1,2026-01-05,open,,Team A,a@nhs.net"]
    result = read_layout(file_of(CAMHS_HEADER, rows, encoding="utf-8"), CFG.layout("camhs-referrals"), CODES)
    [q] = result.quarantined
    assert q.raw == b"" and "payload withheld" in q.reason


def test_episode_type_and_status_are_checked():
    header = "PersonID,EpisodeID,EpisodeType,StartDate,EndDate,LegalStatus"
    rows = ["P1,E1,cla,2025-01-01,,c2", "P1,E2,CIX,2025-01-01,,"]
    result = read_layout(file_of(header, rows, encoding="utf-8"), CFG.layout("sc-episodes"), CODES)
    assert (result.frame.iloc[0]["episode_type"], result.frame.iloc[0]["legal_status"]) == ("CLA", "C2")
    assert reasons(result) == {2: "episode_type is not one of CIN, CPP, CLA"}


@pytest.mark.parametrize("fmt, text, expected", [
    ("%d/%m/%Y", "03/09/2026", dt.date(2026, 9, 3)),
    ("%d/%m/%Y", "3/9/2026", dt.date(2026, 9, 3)),        # not zero-padded: still a date
    ("%d/%m/%Y", "31/02/2026", None),                     # impossible
    ("%d/%m/%Y", "2026-09-03", None),                     # another format
    ("%Y-%m-%d", "2026-09-03", dt.date(2026, 9, 3)),
    ("%Y-%m-%d", "2026-9-3", dt.date(2026, 9, 3)),
    ("%Y-%m-%d", "20260903", None),
    ("%Y-%m-%d", "2026-00-10", None),
    ("%m/%d/%Y", "09/03/2026", dt.date(2026, 9, 3)),      # formats without a fast path
])
def test_parse_date_reads_exactly_what_strptime_reads(fmt, text, expected):
    from transforms.normalise import FieldProblem, parse_date
    if expected is None:
        with pytest.raises(FieldProblem):
            parse_date(text, fmt)
    else:
        assert parse_date(text, fmt) == expected
