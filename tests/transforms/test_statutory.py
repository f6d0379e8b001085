"""Statutory returns (CIN census XML, SSDA903 CSV) read into canonical social-care frames."""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac

import pandas as pd
import pytest

from transforms.statutory import (
    EPISODE_COLUMNS, PERSON_COLUMNS, XML_DECLARATIONS_REFUSED, ReturnRead, adopted_person_ids,
    mark_restricted, merge_returns_with_extract, pseudonymise_episode_ids, read_cin_census,
    read_ssda903_episodes, read_ssda903_header,
)

D = dt.date


def _cin(children_xml: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Message>\n<Header><CollectionDetails>'
        "<Collection>CIN</Collection><Year>2027</Year><ReferenceDate>2027-03-31</ReferenceDate>"
        "</CollectionDetails></Header>\n<Children>\n" + children_xml + "</Children>\n</Message>\n"
    ).encode("utf-8")


def _child(la_id: str | None = "LA001", *, dob="2015-03-27", sex="<Sex>M</Sex>", details="") -> str:
    la = f"<LAchildID>{la_id}</LAchildID>" if la_id is not None else ""
    return (f"<Child><ChildIdentifiers>{la}<UPN>B801200005001</UPN><PersonBirthDate>{dob}</PersonBirthDate>"
            f"{sex}</ChildIdentifiers>{details}</Child>\n")


def _details(referral="2025-10-06", closure="", reason="", plans="") -> str:
    closure_el = f"<CINclosureDate>{closure}</CINclosureDate>" if closure else ""
    reason_el = f"<ReasonForClosure>{reason}</ReasonForClosure>" if reason else ""
    return (f"<CINdetails><CINreferralDate>{referral}</CINreferralDate><ReferralSource>1A</ReferralSource>"
            f"<PrimaryNeedCode>N1</PrimaryNeedCode>{closure_el}{reason_el}{plans}</CINdetails>")


def _plan(start, end="") -> str:
    end_el = f"<CPPendDate>{end}</CPPendDate>" if end else ""
    return f"<ChildProtectionPlans><CPPstartDate>{start}</CPPstartDate>{end_el}</ChildProtectionPlans>"


def _persons(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame([{c: r.get(c) for c in PERSON_COLUMNS} for r in rows], columns=list(PERSON_COLUMNS),
                         dtype=object)
    frame["restricted"] = frame["restricted"].astype(bool)
    frame["row_number"] = frame["row_number"].astype("int64")
    return frame


def _episodes(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame([{c: r.get(c) for c in EPISODE_COLUMNS} for r in rows], columns=list(EPISODE_COLUMNS),
                         dtype=object)
    frame["row_number"] = frame["row_number"].astype("int64")
    return frame


def _assert_reconciles(result: ReturnRead) -> None:
    staged = set()
    for frame in result.feed_frames.values():
        staged |= set(frame["row_number"])
    quarantined = {row for row, *_ in result.quarantined if row is not None}
    assert not staged & quarantined
    assert result.rows_read == len(staged) + len(quarantined)
    assert result.rows_read == result.rows_staged + result.rows_quarantined


def _q(result: ReturnRead) -> list[tuple]:
    """Quarantine entries without the raw bytes."""
    return [(row, field, reason) for row, field, reason, _raw in result.quarantined]


# --- CIN census -------------------------------------------------------------------------------

def test_cin_census_reads_children_episodes_and_plans_in_both_nestings():
    wrapped_plan = ("<ChildProtectionPlans><CPPdetails><CPPstartDate>2026-01-05</CPPstartDate></CPPdetails>"
                    "</ChildProtectionPlans>")
    data = _cin(
        "<Child><ChildIdentifiers><LAchildID> LA001 </LAchildID><UPN>B801200005001</UPN>"
        "<PersonBirthDate>2015-03-27</PersonBirthDate><GenderCurrent>2</GenderCurrent></ChildIdentifiers>"
        "<ChildCharacteristics><Ethnicity>WBRI</Ethnicity></ChildCharacteristics>"
        + _details("2024-05-01", "2024-12-20", "RC8", _plan("2024-06-10", "2024-11-30"))
        + _details("2025-10-06", plans=wrapped_plan)
        + "</Child>\n"
        "<Child><ChildIdentifiers><LAchildID>LA002</LAchildID><UPNunknown>UN1</UPNunknown>"
        "<PersonBirthDate>2019-12-01</PersonBirthDate><Sex>M</Sex></ChildIdentifiers>"
        + _details("2026-02-14") + "</Child>\n"
    )
    result = read_cin_census(data, file_name="cin_2027.xml")

    assert result.file_error is None and result.quarantined == [] and result.rows_read == 2
    pd.testing.assert_frame_equal(result.feed_frames["sc_persons"], _persons([
        {"person_id": "LA001", "upn": "B801200005001", "dob": D(2015, 3, 27), "sex": "F", "restricted": False,
         "row_number": 1},
        {"person_id": "LA002", "upn": None, "dob": D(2019, 12, 1), "sex": "M", "restricted": False,
         "row_number": 2},
    ]))
    pd.testing.assert_frame_equal(result.feed_frames["sc_episodes"], _episodes([
        {"person_id": "LA001", "episode_id": "cin:LA001:2024-05-01", "episode_type": "CIN",
         "start_date": D(2024, 5, 1), "end_date": D(2024, 12, 20), "reason_ended": "RC8", "row_number": 1},
        {"person_id": "LA001", "episode_id": "cpp:LA001:2024-06-10", "episode_type": "CPP",
         "start_date": D(2024, 6, 10), "end_date": D(2024, 11, 30), "row_number": 1},
        {"person_id": "LA001", "episode_id": "cin:LA001:2025-10-06", "episode_type": "CIN",
         "start_date": D(2025, 10, 6), "row_number": 1},
        {"person_id": "LA001", "episode_id": "cpp:LA001:2026-01-05", "episode_type": "CPP",
         "start_date": D(2026, 1, 5), "row_number": 1},
        {"person_id": "LA002", "episode_id": "cin:LA002:2026-02-14", "episode_type": "CIN",
         "start_date": D(2026, 2, 14), "row_number": 2},
    ]))
    _assert_reconciles(result)


def test_cin_census_in_a_namespace_reads_the_same():
    data = (b'<Message xmlns="http://www.example.org/cin"><Children>'
            + _child(details=_details()).encode() + b"</Children></Message>")
    result = read_cin_census(data, file_name="cin.xml")
    assert list(result.feed_frames["sc_persons"]["person_id"]) == ["LA001"]
    assert list(result.feed_frames["sc_episodes"]["episode_id"]) == ["cin:LA001:2025-10-06"]


@pytest.mark.parametrize("code, expected", [("1", "M"), ("2", "F"), ("0", "U"), ("9", "U"), ("U", "U"),
                                            ("F", "F"), ("m", "M")])
def test_cin_census_sex_codes(code, expected):
    result = read_cin_census(_cin(_child(sex=f"<Sex>{code}</Sex>")), file_name="cin.xml")
    assert list(result.feed_frames["sc_persons"]["sex"]) == [expected]


def test_cin_closed_as_adopted_makes_the_child_restricted():
    data = _cin(_child("LA001", details=_details("2024-01-10", "2025-02-01", "RC1"))
                + _child("LA002", details=_details("2024-01-10", "2025-02-01", "RC8")))
    result = read_cin_census(data, file_name="cin.xml")
    assert list(result.feed_frames["sc_persons"]["restricted"]) == [True, False]
    assert adopted_person_ids(result.feed_frames["sc_episodes"]) == {"LA001"}


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
<Message><Children><Child><ChildIdentifiers><LAchildID>&lol9;</LAchildID></ChildIdentifiers></Child>
</Children></Message>
"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE Message [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
<Message><Children><Child><ChildIdentifiers><LAchildID>&xxe;</LAchildID></ChildIdentifiers></Child>
</Children></Message>
"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE Message SYSTEM "http://example.invalid/cin.dtd">
<Message><Children/></Message>
"""


@pytest.mark.parametrize("data", [BILLION_LAUGHS, XXE, EXTERNAL_DTD], ids=["bomb", "xxe", "external-dtd"])
def test_xml_with_entity_declarations_is_refused_without_expansion(data):
    result = read_cin_census(data, file_name="cin_2027.xml")

    assert result.file_error == f"cin_2027.xml: {XML_DECLARATIONS_REFUSED}"
    # the whole file is quarantined as received: nothing expanded, nothing fetched
    assert result.quarantined == [(None, None, XML_DECLARATIONS_REFUSED, data)]
    assert result.rows_read == 0
    assert all(frame.empty for frame in result.feed_frames.values())
    assert set(result.feed_frames) == {"sc_persons", "sc_episodes"}
    assert b"root:" not in result.quarantined[0][3]
    _assert_reconciles(result)


def test_malformed_xml_names_the_line():
    data = b"<Message>\n<Children>\n<Child>\n<ChildIdentifiers></Child>\n</Children>\n</Message>\n"
    result = read_cin_census(data, file_name="cin.xml")
    assert result.file_error == "cin.xml: malformed XML at line 4, column 20"
    assert _q(result) == [(None, None, "malformed XML at line 4, column 20")]
    assert result.rows_read == 0


def test_xml_that_is_not_a_cin_census_is_refused():
    result = read_cin_census(b"<Return><Children/></Return>", file_name="x.xml")
    assert result.file_error == "x.xml: not a CIN census: the root element is not Message"
    result = read_cin_census(b"<Message><Header/></Message>", file_name="x.xml")
    assert _q(result) == [(None, "Children", "not a CIN census: Message has no Children element")]


def test_child_without_la_child_id_is_quarantined_and_the_rest_read():
    data = _cin(_child("LA001", details=_details()) + _child(None, details=_details())
                + _child("LA003"))
    result = read_cin_census(data, file_name="cin.xml")

    assert _q(result) == [(2, "LAchildID", "LAchildID is missing")]
    assert result.quarantined[0][3].startswith(b"<Child><ChildIdentifiers><UPN>B801200005001</UPN>")
    assert result.quarantined[0][3].endswith(b"</Child>")
    assert list(result.feed_frames["sc_persons"]["row_number"]) == [1, 3]
    assert list(result.feed_frames["sc_episodes"]["row_number"]) == [1]
    _assert_reconciles(result)


def test_cin_census_impossible_dates_quarantine_the_child_naming_each_field():
    data = _cin(
        _child("LA001", dob="2015-02-30")
        + _child("LA002", details=_details("2025-10-06", "2025-09-01"))
        + _child("LA003", details=_details(plans=_plan("2025-13-01")))
        + _child("LA004", details=_details(plans=_plan("2025-11-01", "2025-10-31")))
        + _child("LA005", dob="27/03/2015", details=_details(referral=""))
        + _child("LA006", details=_details())
    )
    result = read_cin_census(data, file_name="cin.xml")

    assert _q(result) == [
        (1, "PersonBirthDate", "PersonBirthDate is not a real date in YYYY-MM-DD form"),
        (2, "CINclosureDate", "CINclosureDate is before CINreferralDate"),
        (3, "CPPstartDate", "CPPstartDate is not a real date in YYYY-MM-DD form"),
        (4, "CPPendDate", "CPPendDate is before CPPstartDate"),
        (5, "PersonBirthDate", "PersonBirthDate is not a real date in YYYY-MM-DD form"),
        (5, "CINreferralDate", "CINreferralDate is missing"),
    ]
    assert list(result.feed_frames["sc_persons"]["person_id"]) == ["LA006"]
    assert result.rows_read == 6 and result.rows_staged == 1 and result.rows_quarantined == 5
    _assert_reconciles(result)


def test_cin_census_repeated_child_and_repeated_episode_are_quarantined():
    data = _cin(
        _child("LA001", details=_details())
        + _child("LA001", details=_details("2026-01-01"))
        + _child("LA002", details=_details("2025-10-06") + _details("2025-10-06"))
        + _child("LA003", sex="<Sex>7</Sex>")
    )
    result = read_cin_census(data, file_name="cin.xml")
    assert _q(result) == [
        (2, "LAchildID", "LAchildID repeats the child of row 1"),
        (3, "CINreferralDate", "two CIN episodes of this child share CINreferralDate"),
        (4, "Sex", "Sex is not a recognised sex code (1/M, 2/F, 0/9/U)"),
    ]
    assert list(result.feed_frames["sc_episodes"]["episode_id"]) == ["cin:LA001:2025-10-06"]
    _assert_reconciles(result)


def test_reasons_and_file_errors_name_no_identity_value():
    data = _cin(_child("SECRET1", dob="2015-02-30") + _child("SECRET1", dob="2015-02-28")
                + _child("SECRET2", details=_details("2025-10-06", "2025-09-01")))
    result = read_cin_census(data, file_name="cin.xml")
    texts = [reason for _, _, reason, _ in result.quarantined]
    assert len(texts) == 2
    for text in texts:
        assert "SECRET" not in text and "2015" not in text and "B8012" not in text


# --- SSDA903 ------------------------------------------------------------------------------------

HEADER = "CHILD,SEX,DOB,ETHNIC,UPN,MOTHER,MC_DOB\r\n"
EPISODES = ("CHILD,DECOM,RNE,LS,CIN,PLACE,PLACE_PROVIDER,DEC,REC,REASON_PLACE_CHANGE,HOME_POST,PL_POST,"
            "URN\r\n")


def test_ssda903_header_reads_persons():
    data = ("\ufeff" + HEADER
            + "LA001,1,27/03/2015,WBRI,B801200005001,,\r\n"
            + "LA002,2,1/2/2016,WBRI,UN3,,\r\n"
            + " LA003 ,,,WBRI,,,\r\n"
            + "\r\n").encode("utf-8")
    result = read_ssda903_header(data, file_name="header.csv")

    assert result.file_error is None and result.quarantined == [] and result.rows_read == 3
    assert set(result.feed_frames) == {"sc_persons"}
    pd.testing.assert_frame_equal(result.feed_frames["sc_persons"], _persons([
        {"person_id": "LA001", "upn": "B801200005001", "dob": D(2015, 3, 27), "sex": "M", "restricted": False,
         "row_number": 1},
        {"person_id": "LA002", "dob": D(2016, 2, 1), "sex": "F", "restricted": False, "row_number": 2},
        {"person_id": "LA003", "restricted": False, "row_number": 3},
    ]))


def test_ssda903_episodes_read_as_cla_episodes():
    data = (EPISODES
            + "LA001,01/04/2024,S,C2,N1,U1,PR1,15/09/2024,x1,,ME14,ME15,\r\n"
            + "LA001,15/09/2024,P,C2,N1,U3,PR1,,,PLACE,ME14,ME16,123456\r\n").encode("utf-8")
    result = read_ssda903_episodes(data, file_name="episodes.csv")

    assert result.file_error is None and result.quarantined == [] and result.rows_read == 2
    assert set(result.feed_frames) == {"sc_episodes"}
    pd.testing.assert_frame_equal(result.feed_frames["sc_episodes"], _episodes([
        {"person_id": "LA001", "episode_id": "cla:LA001:2024-04-01", "episode_type": "CLA",
         "start_date": D(2024, 4, 1), "end_date": D(2024, 9, 15), "legal_status": "C2", "reason_ended": "X1",
         "row_number": 1},
        {"person_id": "LA001", "episode_id": "cla:LA001:2024-09-15", "episode_type": "CLA",
         "start_date": D(2024, 9, 15), "legal_status": "C2", "row_number": 2},
    ]))
    _assert_reconciles(result)


def test_ssda903_missing_required_column_quarantines_the_whole_file():
    data = "CHILD,SEX,ETHNIC,UPN\r\nLA001,1,WBRI,UN1\r\n".encode("utf-8")
    result = read_ssda903_header(data, file_name="header.csv")
    assert result.file_error == "header.csv: required column DOB is missing"
    assert result.quarantined == [(None, "DOB", "required column DOB is missing", data)]
    assert result.rows_read == 0 and result.feed_frames["sc_persons"].empty

    data = "CHILD,DECOM,RNE,LS,CIN,PLACE,DEC\nLA001,01/04/2024,S,C2,N1,U1,\n".encode("utf-8")
    result = read_ssda903_episodes(data, file_name="episodes.csv")
    assert _q(result) == [(None, "REC", "required column REC is missing")]
    assert result.file_error == "episodes.csv: required column REC is missing"

    data = "CHILD,SEX,ETHNIC\r\nLA001,1,WBRI\r\n".encode("utf-8")
    result = read_ssda903_header(data, file_name="header.csv")
    assert _q(result) == [(None, "DOB", "required columns DOB, UPN are missing")]


def test_ssda903_empty_or_undecodable_file_is_refused():
    assert read_ssda903_header(b"", file_name="h.csv").file_error == "h.csv: empty file: no header row"
    result = read_ssda903_header(HEADER.encode() + b"LA\x81,1,01/01/2015,,,,\r\n", file_name="h.csv")
    assert result.file_error == "h.csv: not readable as UTF-8 or Windows-1252 text"


def test_ssda903_impossible_dates_quarantine_the_row_naming_the_field():
    header = (HEADER
              + "LA001,1,31/04/2015,WBRI,UN1,,\r\n"
              + "LA002,1,2015-04-01,WBRI,UN1,,\r\n"
              + "LA003,2,30/04/2015,WBRI,UN1,,\r\n").encode("utf-8")
    result = read_ssda903_header(header, file_name="header.csv")
    assert _q(result) == [
        (1, "DOB", "DOB is not a real date in dd/mm/yyyy form"),
        (2, "DOB", "DOB is not a real date in dd/mm/yyyy form"),
    ]
    assert result.quarantined[0][3] == b"LA001,1,31/04/2015,WBRI,UN1,,\r\n"
    assert list(result.feed_frames["sc_persons"]["person_id"]) == ["LA003"]
    _assert_reconciles(result)

    episodes = (EPISODES
                + "LA001,29/02/2023,S,C2,N1,U1,PR1,,,,,,\r\n"
                + "LA002,01/04/2024,S,C2,N1,U1,PR1,31/03/2024,E3,,,,\r\n"
                + "LA003,,S,C2,N1,U1,PR1,,,,,,\r\n"
                + "LA004,29/02/2024,S,C2,N1,U1,PR1,,,,,,\r\n").encode("utf-8")
    result = read_ssda903_episodes(episodes, file_name="episodes.csv")
    assert _q(result) == [
        (1, "DECOM", "DECOM is not a real date in dd/mm/yyyy form"),
        (2, "DEC", "DEC is before DECOM"),
        (3, "DECOM", "DECOM is missing"),
    ]
    assert list(result.feed_frames["sc_episodes"]["episode_id"]) == ["cla:LA004:2024-02-29"]
    _assert_reconciles(result)


def test_ssda903_bad_rows_reconcile_with_rows_read():
    data = (EPISODES
            + "LA001,01/04/2024,S,C2,N1,U1,PR1,,,,,,\r\n"
            + "LA001,01/04/2024,S,C2,N1,U1,PR1,,,,,,\r\n"            # repeats row 1
            + "LA002,01/04/2024,S,C2\r\n"                               # short row
            + ",01/04/2024,S,C2,N1,U1,PR1,,,,,,\r\n"                  # no child
            + ",,,,,,,,,,,,\r\n"                                        # blank: not a row read
            + '"LA003",02/04/2024,S,"C2",N1,U1,PR1,,,"a\r\nb",,,\r\n'   # quoted cell over two lines
            + "LA004,03/04/2024,S,V3,N1,U1,PR1,05/04/2024,E4AXY,,,,\r\n"  # REC too long
            ).encode("utf-8")
    result = read_ssda903_episodes(data, file_name="episodes.csv")
    assert _q(result) == [
        (2, "DECOM", "DECOM repeats row 1"),
        (3, None, "row has 4 fields, the header has 13"),
        (4, "CHILD", "CHILD is missing"),
        (7, "REC", "REC is longer than 4 characters"),
    ]
    assert list(result.feed_frames["sc_episodes"]["row_number"]) == [1, 6]
    assert result.rows_read == 6
    _assert_reconciles(result)


def test_ssda903_windows_1252_row_is_quarantined_as_its_own_bytes():
    data = HEADER.encode() + "LA\u00e9001,3,01/01/2015,WBRI,UN1,,\r\n".encode("cp1252")
    result = read_ssda903_header(data, file_name="header.csv")
    assert _q(result) == [(1, "SEX", "SEX is not a recognised sex code (1/M, 2/F, 0/9/U)")]
    assert result.quarantined[0][3] == "LA\u00e9001,3,01/01/2015,WBRI,UN1,,\r\n".encode("cp1252")


def test_adoption_in_the_episodes_file_restricts_the_header_person():
    header = read_ssda903_header((HEADER + "LA001,1,27/03/2015,WBRI,UN1,,\r\n"
                                  + "LA002,2,01/06/2016,WBRI,UN1,,\r\n"
                                  + "LA003,2,01/06/2016,WBRI,UN1,,\r\n").encode(), file_name="h.csv")
    episodes = read_ssda903_episodes((EPISODES
                                      + "LA001,01/04/2022,S,C2,N1,U1,PR1,01/09/2023,E12,,,,\r\n"
                                      + "LA002,01/04/2022,S,E1,N1,A3,PR1,01/09/2023,e11,,,,\r\n"
                                      + "LA003,01/04/2022,S,C2,N1,U1,PR1,01/09/2023,E13,,,,\r\n").encode(),
                                     file_name="e.csv")
    persons = header.feed_frames["sc_persons"]
    assert list(persons["restricted"]) == [False, False, False]

    adopted = adopted_person_ids(episodes.feed_frames["sc_episodes"])
    assert adopted == {"LA001", "LA002"}
    marked = mark_restricted(persons, adopted)
    assert list(marked["restricted"]) == [True, True, False]
    assert marked["restricted"].dtype == bool
    assert list(persons["restricted"]) == [False, False, False]   # the input is not changed


def test_adopted_person_ids_ignores_adoption_codes_on_other_episode_types():
    frame = _episodes([
        {"person_id": "A", "episode_id": "x", "episode_type": "CIN", "start_date": D(2024, 1, 1),
         "reason_ended": "E11", "row_number": 1},
        {"person_id": "B", "episode_id": "y", "episode_type": "CLA", "start_date": D(2024, 1, 1),
         "reason_ended": "RC1", "row_number": 2},
        {"person_id": "C", "episode_id": "z", "episode_type": "CLA", "start_date": D(2024, 1, 1),
         "reason_ended": None, "row_number": 3},
    ])
    assert adopted_person_ids(frame) == set()
    assert adopted_person_ids(frame.drop(columns=["reason_ended"])) == set()


# --- merging with the case-management extract -------------------------------------------------

def _extract_persons() -> pd.DataFrame:
    return pd.DataFrame([
        {"person_id": "LA001", "upn": "B801200005001", "nhs_number": "9434765870", "forename": "Ann",
         "surname": "Lee", "dob": D(2015, 3, 27), "sex": "F", "postcode": "ME14 1XX", "restricted": False,
         "row_number": 1},
        {"person_id": "LA009", "upn": None, "nhs_number": None, "forename": "Bo", "surname": "Ray",
         "dob": D(2016, 1, 1), "sex": "M", "postcode": None, "restricted": True, "row_number": 2},
    ])


def _extract_episodes() -> pd.DataFrame:
    return pd.DataFrame([
        {"person_id": "LA001", "episode_id": "CMS-77", "episode_type": "CLA", "start_date": D(2022, 4, 1),
         "end_date": D(2023, 9, 1), "legal_status": "C2", "row_number": 1},
        {"person_id": "LA009", "episode_id": "CMS-78", "episode_type": "CIN", "start_date": D(2025, 1, 2),
         "end_date": None, "legal_status": None, "row_number": 2},
    ])


def test_merge_extract_wins_for_a_record_in_both():
    return_persons = _persons([
        {"person_id": "LA001", "upn": "A000000000000", "dob": D(2015, 3, 27), "sex": "F", "restricted": False,
         "row_number": 1},
        {"person_id": "LA002", "dob": D(2017, 5, 5), "sex": "M", "restricted": False, "row_number": 2},
        {"person_id": "LA002", "dob": D(2017, 5, 6), "sex": "M", "restricted": False, "row_number": 3},
    ])
    return_episodes = _episodes([
        # the same episode as the extract's CMS-77, ended in adoption: dropped, but the adoption counts
        {"person_id": "LA001", "episode_id": "cla:LA001:2022-04-01", "episode_type": "CLA",
         "start_date": D(2022, 4, 1), "end_date": D(2023, 9, 1), "legal_status": "C2", "reason_ended": "E11",
         "row_number": 1},
        {"person_id": "LA002", "episode_id": "cin:LA002:2025-10-06", "episode_type": "CIN",
         "start_date": D(2025, 10, 6), "row_number": 2},
        {"person_id": "LA002", "episode_id": "cin:LA002:2025-10-06", "episode_type": "CIN",
         "start_date": D(2025, 10, 6), "row_number": 5},
        {"person_id": "LA009", "episode_id": "cpp:LA009:2025-02-01", "episode_type": "CPP",
         "start_date": D(2025, 2, 1), "row_number": 3},
    ])
    persons, episodes = merge_returns_with_extract(_extract_persons(), return_persons, _extract_episodes(),
                                                   return_episodes)

    assert list(persons["person_id"]) == ["LA001", "LA009", "LA002"]
    assert list(persons["upn"]) == ["B801200005001", None, None]      # the extract's UPN, not the return's
    assert list(persons["forename"]) == ["Ann", "Bo", None]
    assert list(persons["dob"]) == [D(2015, 3, 27), D(2016, 1, 1), D(2017, 5, 5)]
    assert list(persons["restricted"]) == [True, True, False]         # LA001 adopted per the return
    assert list(persons["row_number"]) == [1, 2, 2]

    assert list(episodes["episode_id"]) == ["CMS-77", "CMS-78", "cin:LA002:2025-10-06", "cpp:LA009:2025-02-01"]
    assert list(episodes["reason_ended"]) == [None, None, None, None]
    assert list(episodes["start_date"]) == [D(2022, 4, 1), D(2025, 1, 2), D(2025, 10, 6), D(2025, 2, 1)]


def test_merge_matches_episode_start_dates_across_date_types():
    extract_episodes = _extract_episodes().assign(start_date=pd.to_datetime(["2022-04-01", "2025-01-02"]))
    return_episodes = _episodes([
        {"person_id": "LA001", "episode_id": "cla:LA001:2022-04-01", "episode_type": "CLA",
         "start_date": D(2022, 4, 1), "row_number": 1},
    ])
    _, episodes = merge_returns_with_extract(_extract_persons(), _persons([]), extract_episodes, return_episodes)
    assert list(episodes["episode_id"]) == ["CMS-77", "CMS-78"]


def test_merge_with_empty_returns_is_the_extract():
    persons, episodes = merge_returns_with_extract(_extract_persons(), _persons([]), _extract_episodes(),
                                                   _episodes([]))
    pd.testing.assert_frame_equal(persons, _extract_persons())
    assert list(episodes["episode_id"]) == ["CMS-77", "CMS-78"]
    assert list(episodes.columns) == list(_extract_episodes().columns) + ["reason_ended"]


# --- episode ids before staging ---------------------------------------------------------------

def test_pseudonymise_episode_ids_replaces_the_la_child_id_by_the_person_token():
    key = b"k" * 32
    ref = hmac.new(key, b"sc_person:LA001", hashlib.sha256).hexdigest()
    episodes = pd.concat([_extract_episodes(), _episodes([
        {"person_id": "LA001", "episode_id": "cla:LA001:2024-04-01", "episode_type": "CLA",
         "start_date": D(2024, 4, 1), "row_number": 1},
        {"person_id": "LA001", "episode_id": "cpp:LA001:2025-02-01", "episode_type": "CPP",
         "start_date": D(2025, 2, 1), "row_number": 2},
    ])], ignore_index=True)
    out = pseudonymise_episode_ids(episodes, key)
    assert list(out["episode_id"]) == ["CMS-77", "CMS-78", f"cla:{ref}:2024-04-01", f"cpp:{ref}:2025-02-01"]
    assert all(len(e) <= 100 for e in out["episode_id"])
    assert list(episodes["episode_id"])[2] == "cla:LA001:2024-04-01"    # the input is not changed
