"""The synthetic statutory-return writer produces files the statutory readers accept."""
from __future__ import annotations

import datetime as dt

from synthetic.statutory import (
    SSDA903_EPISODE_COLUMNS, SSDA903_HEADER_COLUMNS, write_cin_census, write_ssda903,
)
from transforms.statutory import (
    adopted_person_ids, read_cin_census, read_ssda903_episodes, read_ssda903_header,
)

D = dt.date


def test_cin_census_round_trip(tmp_path):
    path = write_cin_census(tmp_path / "cin.xml", [
        {"person_id": "LA001", "upn": "B801200005001", "dob": D(2015, 3, 27), "sex": "F",
         "cin_details": [
             {"referral_date": D(2024, 5, 1), "closure_date": D(2024, 12, 20), "reason_for_closure": "RC8",
              "cpp": [{"start_date": D(2024, 6, 10), "end_date": D(2024, 11, 30)}]},
             {"referral_date": D(2025, 10, 6)},
         ]},
        {"person_id": "LA002", "dob": D(2019, 12, 1), "sex": "U",
         "cin_details": [{"referral_date": D(2026, 2, 14), "closure_date": D(2026, 3, 1),
                          "reason_for_closure": "RC1"}]},
    ])
    assert path == tmp_path / "cin.xml"
    data = path.read_bytes()
    assert data.startswith(b"<?xml") and b"<LEA>886</LEA>" in data and b"<!DOCTYPE" not in data

    result = read_cin_census(data, file_name="cin.xml")
    assert result.file_error is None and result.quarantined == [] and result.rows_read == 2
    persons = result.feed_frames["sc_persons"]
    assert persons[["person_id", "upn", "dob", "sex", "restricted"]].values.tolist() == [
        ["LA001", "B801200005001", D(2015, 3, 27), "F", False],
        ["LA002", None, D(2019, 12, 1), "U", True],
    ]
    episodes = result.feed_frames["sc_episodes"]
    assert episodes[["episode_id", "start_date", "end_date", "reason_ended"]].values.tolist() == [
        ["cin:LA001:2024-05-01", D(2024, 5, 1), D(2024, 12, 20), "RC8"],
        ["cpp:LA001:2024-06-10", D(2024, 6, 10), D(2024, 11, 30), None],
        ["cin:LA001:2025-10-06", D(2025, 10, 6), None, None],
        ["cin:LA002:2026-02-14", D(2026, 2, 14), D(2026, 3, 1), "RC1"],
    ]


def test_cin_census_writes_bad_values_verbatim_for_quarantine_cases(tmp_path):
    path = write_cin_census(tmp_path / "cin.xml", [
        {"person_id": None, "dob": D(2015, 3, 27), "sex": "M"},
        {"person_id": "LA002", "dob": "2015-02-30", "sex": "M"},
    ])
    result = read_cin_census(path.read_bytes(), file_name="cin.xml")
    assert [(row, field) for row, field, _, _ in result.quarantined] == [(1, "LAchildID"), (2, "PersonBirthDate")]


def test_ssda903_round_trip_and_layout(tmp_path):
    header_path, episodes_path = write_ssda903(
        tmp_path / "header.csv", tmp_path / "episodes.csv",
        [
            {"person_id": "LA001", "sex": "M", "dob": D(2015, 3, 27), "upn": "B801200005001"},
            {"person_id": "LA002", "sex": "U", "dob": D(2016, 6, 1), "upn": None},
        ],
        [
            {"person_id": "LA001", "decom": D(2022, 4, 1), "rne": "S", "ls": "C2", "cin": "N1", "place": "U1",
             "place_provider": "PR1", "dec": D(2023, 9, 1), "rec": "E11", "home_post": "ME14",
             "pl_post": "ME15"},
            {"person_id": "LA002", "decom": D(2025, 1, 6), "rne": "S", "ls": "V3", "cin": "N2", "place": "U1",
             "place_provider": "PR1"},
        ],
    )
    header_bytes, episode_bytes = header_path.read_bytes(), episodes_path.read_bytes()
    assert header_bytes.split(b"\r\n")[0].decode() == ",".join(SSDA903_HEADER_COLUMNS)
    assert header_bytes.split(b"\r\n")[1:] == [b"LA001,1,27/03/2015,WBRI,B801200005001,,",
                                               b"LA002,,01/06/2016,WBRI,UN1,,", b""]
    assert episode_bytes.split(b"\r\n")[0].decode() == ",".join(SSDA903_EPISODE_COLUMNS)
    assert episode_bytes.split(b"\r\n")[1] == b"LA001,01/04/2022,S,C2,N1,U1,PR1,01/09/2023,E11,,ME14,ME15,"

    header = read_ssda903_header(header_bytes, file_name="header.csv")
    assert header.quarantined == []
    assert header.feed_frames["sc_persons"][["person_id", "upn", "dob", "sex"]].values.tolist() == [
        ["LA001", "B801200005001", D(2015, 3, 27), "M"],
        ["LA002", None, D(2016, 6, 1), None],
    ]
    episodes = read_ssda903_episodes(episode_bytes, file_name="episodes.csv")
    assert episodes.quarantined == []
    assert episodes.feed_frames["sc_episodes"][
        ["episode_id", "start_date", "end_date", "legal_status", "reason_ended"]].values.tolist() == [
        ["cla:LA001:2022-04-01", D(2022, 4, 1), D(2023, 9, 1), "C2", "E11"],
        ["cla:LA002:2025-01-06", D(2025, 1, 6), None, "V3", None],
    ]
    assert adopted_person_ids(episodes.feed_frames["sc_episodes"]) == {"LA001"}


def test_ssda903_writes_an_impossible_date_verbatim(tmp_path):
    header_path, episodes_path = write_ssda903(
        tmp_path / "h.csv", tmp_path / "e.csv",
        [{"person_id": "LA001", "sex": "F", "dob": "31/04/2015"}],
        [{"person_id": "LA001", "decom": "30/02/2024", "ls": "C2"}],
    )
    header = read_ssda903_header(header_path.read_bytes(), file_name="h.csv")
    episodes = read_ssda903_episodes(episodes_path.read_bytes(), file_name="e.csv")
    assert [(row, field) for row, field, _, _ in header.quarantined] == [(1, "DOB")]
    assert [(row, field) for row, field, _, _ in episodes.quarantined] == [(1, "DECOM")]
