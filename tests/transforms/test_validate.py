"""Canonical staged models: derived from the store tables, lazy, scrubbed failure reasons."""
import datetime as dt

import pandas as pd

from schemas import tables
from schemas.staged import STAGED_SCHEMAS, empty_staged_frame
from transforms.validate import validate_staged

TOKEN_A, TOKEN_B = "a" * 64, "b" * 64


def marks(**changes):
    row = {"laestab": "8864001", "pupil_ref": TOKEN_A, "session_date": dt.date(2024, 9, 2), "session": "AM",
           "mark": "/", "category": "present", "minutes_late": None,
           "recorded_at": dt.datetime(2024, 9, 2, 8, 0, tzinfo=dt.timezone.utc),
           "source_id": "s", "file_id": "f" * 64, "row_number": 1}
    rows = [row, {**row, "session": "PM", "row_number": 2}]
    rows[0].update(changes)
    return pd.DataFrame(rows)


def test_a_schema_for_every_staged_table_with_the_table_columns():
    assert set(STAGED_SCHEMAS) == {"staged_pupils", "staged_marks", "staged_sc_persons", "staged_sc_episodes",
                                   "staged_sc_allocations", "staged_camhs_referrals"}
    for name, schema in STAGED_SCHEMAS.items():
        assert list(schema.columns) == [c.name for c in tables.metadata.tables[name].columns]
        assert list(empty_staged_frame(name).columns) == list(schema.columns)


def test_valid_frame_passes_with_staged_dtypes():
    valid, failures = validate_staged("staged_marks", marks())
    assert failures == [] and len(valid) == 2
    assert str(valid["recorded_at"].dtype) == "datetime64[ns, UTC]"
    assert str(valid["minutes_late"].dtype) == "Int64"


def test_bad_values_quarantine_their_row_naming_the_field():
    for changes, field in [({"session": "XX"}, "session"), ({"category": "absent"}, "category"),
                           ({"pupil_ref": "not-a-token"}, "pupil_ref"), ({"laestab": "886"}, "laestab"),
                           ({"minutes_late": -3}, "minutes_late"), ({"session_date": "2024-09-02"}, "session_date"),
                           ({"mark": None}, "mark")]:
        valid, failures = validate_staged("staged_marks", marks(**changes))
        assert list(valid["row_number"]) == [2], changes
        assert [(f.row_number, f.field) for f in failures] == [(1, field)], changes
        assert failures[0].reason.startswith(f"failed validation of staged_marks: {field} failed")


def test_duplicate_primary_key_quarantines_both_rows():
    frame = marks(session="PM")
    valid, failures = validate_staged("staged_marks", frame)
    assert valid.empty and sorted(f.row_number for f in failures) == [1, 2]


def test_failure_reasons_never_echo_identity_or_unknown_columns():
    upn = "B801200005001"
    valid, failures = validate_staged("staged_marks", marks(pupil_ref=upn))
    assert upn not in failures[0].reason and "<redacted>" in failures[0].reason
    allocation = pd.DataFrame([{"person_ref": TOKEN_B, "worker_id": "W1", "start_date": dt.date(2024, 1, 1),
                                "worker_name": "Sam " * 60, "source_id": "s", "file_id": "f", "row_number": 4}])
    valid, failures = validate_staged("staged_sc_allocations", allocation)
    assert [(f.row_number, f.field) for f in failures] == [(4, "worker_name")]
    assert "Sam" not in failures[0].reason


def test_safe_values_are_shown():
    _, failures = validate_staged("staged_marks", marks(session="XX"))
    assert "(value XX)" in failures[0].reason


def test_episode_referral_sen_checks():
    episode = pd.DataFrame([{"episode_id": "E1", "person_ref": TOKEN_A, "episode_type": "CXX",
                             "start_date": dt.date(2024, 1, 1), "source_id": "s", "file_id": "f", "row_number": 1}])
    assert validate_staged("staged_sc_episodes", episode)[1][0].field == "episode_type"
    referral = pd.DataFrame([{"referral_id": "R1", "patient_ref": TOKEN_A, "referral_date": dt.date(2024, 1, 1),
                              "referral_status": "pending", "source_id": "s", "file_id": "f", "row_number": 1}])
    assert validate_staged("staged_camhs_referrals", referral)[1][0].field == "referral_status"
    pupil = pd.DataFrame([{"laestab": "8864001", "pupil_ref": TOKEN_A, "sen_provision": "S",
                           "extract_date": dt.date(2024, 9, 4), "source_id": "s", "file_id": "f", "row_number": 1}])
    assert validate_staged("staged_pupils", pupil)[1][0].field == "sen_provision"
    pupil.loc[0, "sen_provision"] = None
    assert validate_staged("staged_pupils", pupil)[1] == []


def test_quick_pass_only_for_frames_pandera_passes_unchanged():
    from schemas.staged import coerce_staged, passes_quickly
    clean = coerce_staged("staged_marks", marks())
    assert passes_quickly("staged_marks", clean)
    pd.testing.assert_frame_equal(STAGED_SCHEMAS["staged_marks"].validate(clean.copy(), lazy=True), clean)
    for changes in [{"session": "XX"}, {"pupil_ref": "A" * 64}, {"laestab": "886400"}, {"minutes_late": -1},
                    {"mark": "ABC"}, {"mark": None}, {"session_date": dt.datetime(2024, 9, 2)}]:
        assert not passes_quickly("staged_marks", coerce_staged("staged_marks", marks(**changes))), changes
    assert not passes_quickly("staged_marks", coerce_staged("staged_marks", marks(session="PM")))  # duplicate key
