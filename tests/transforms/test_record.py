"""The child record: current school, social-care record, restricted, CAMHS involvement as of a moment."""
import datetime as dt

import pandas as pd

from schemas.calendar import LONDON
from transforms.record import RECORD_COLUMNS, as_of_date, child_record, on_roll

AS_OF = dt.datetime(2026, 11, 10, 9, 30, tzinfo=LONDON)


def links_frame(rows):
    return pd.DataFrame(rows, columns=["source_kind", "record_ref", "laestab", "child_key", "linked_on"])


def pupils_frame(rows):
    cols = ["laestab", "pupil_ref", "year_group", "admission_date", "leaving_date", "sen_provision",
            "fsm_eligible", "extract_date"]
    return pd.DataFrame(rows, columns=cols)


PERSONS = pd.DataFrame([{"person_ref": "s1", "restricted": False}, {"person_ref": "s2", "restricted": True}])


def camhs_frame(rows):
    cols = ["referral_id", "patient_ref", "referral_date", "referral_status", "discharge_date", "team_contact"]
    return pd.DataFrame(rows, columns=cols)


LINKS = links_frame([
    ("school", "p-old", "8864001", "c1", "upn"),
    ("school", "p-new", "8864002", "c1", "upn"),
    ("social_care", "s1", None, "c1", "upn"),
    ("health", "h1", None, "c1", "nhs"),
    ("social_care", "s2", None, "c2", "self"),
    ("school", "p-left", "8864003", "c3", "self"),
    ("health", "h3", None, "c4", "self"),
])
PUPILS = pupils_frame([
    ("8864001", "p-old", "7", dt.date(2025, 9, 3), dt.date(2026, 10, 23), "N", False, dt.date(2026, 11, 9)),
    ("8864002", "p-new", "7", dt.date(2026, 11, 2), None, "K", True, dt.date(2026, 11, 9)),
    ("8864003", "p-left", "9", dt.date(2024, 9, 3), dt.date(2026, 11, 9), "E", False, dt.date(2026, 11, 9)),
])
CAMHS = camhs_frame([
    ("r1", "h1", dt.date(2026, 3, 1), "open", None, "team-a@nhs.example"),
    ("r2", "h1", dt.date(2026, 6, 1), "Waiting", None, "team-b@nhs.example"),
    ("r3", "h1", dt.date(2025, 1, 1), "closed", dt.date(2025, 6, 1), "old@nhs.example"),
    ("r4", "h3", dt.date(2026, 1, 1), "open", dt.date(2026, 11, 10), "team-c@nhs.example"),
])


def record():
    return child_record(LINKS, PUPILS, PERSONS, CAMHS, AS_OF).set_index("child_key")


def test_one_row_per_child_with_the_table_columns():
    out = child_record(LINKS, PUPILS, PERSONS, CAMHS, AS_OF)
    assert list(out.columns) == RECORD_COLUMNS
    assert sorted(out["child_key"]) == ["c1", "c2", "c3", "c4"]
    assert (out["as_of"] == AS_OF).all()


def test_current_school_is_the_enrolment_on_roll_now():
    c1 = record().loc["c1"]
    assert (c1["laestab"], c1["pupil_ref"], c1["year_group"], c1["sen_provision"], c1["fsm_eligible"]) == \
        ("8864002", "p-new", "7", "K", True)
    assert c1["person_ref"] == "s1"
    assert (c1["in_school_feed"], c1["in_social_care"], c1["in_health"]) == (True, True, True)


def test_a_child_who_has_left_every_school_has_no_current_school():
    c3 = record().loc["c3"]
    assert c3["in_school_feed"] and c3["laestab"] is None and c3["pupil_ref"] is None


def test_leaving_date_is_the_last_day_on_roll():
    assert list(on_roll(PUPILS, dt.datetime(2026, 11, 9, 12, 0, tzinfo=LONDON))["pupil_ref"]) == ["p-new", "p-left"]
    assert list(on_roll(PUPILS, dt.datetime(2026, 10, 30, 12, 0, tzinfo=LONDON))["pupil_ref"]) == ["p-left"]


def test_restricted_person_marks_the_record():
    rec = record()
    assert rec.loc["c2", "restricted"] and rec.loc["c2", "person_ref"] == "s2"
    assert not rec.loc["c1", "restricted"]


def test_camhs_open_or_waiting_since_earliest_with_latest_contact():
    c1 = record().loc["c1"]
    assert c1["camhs_open"]
    assert c1["camhs_since"] == dt.date(2026, 3, 1)
    assert c1["camhs_team_contact"] == "team-b@nhs.example"


def test_camhs_discharged_today_is_not_open():
    c4 = record().loc["c4"]
    assert c4["in_health"] and not c4["camhs_open"]
    assert c4["camhs_since"] is None and c4["camhs_team_contact"] is None


def test_as_of_date_is_london_date():
    late_utc = dt.datetime(2026, 6, 30, 23, 30, tzinfo=dt.timezone.utc)   # 00:30 BST on 1 July
    assert as_of_date(late_utc) == dt.date(2026, 7, 1)


def test_no_links_gives_empty_record():
    out = child_record(links_frame([]), PUPILS, PERSONS, CAMHS, AS_OF)
    assert out.empty and list(out.columns) == RECORD_COLUMNS


def test_a_leaving_date_before_the_admission_date_is_ignored_for_on_roll():
    pupils = pupils_frame([
        ("8864001", "p-swapped", "7", dt.date(2026, 9, 3), dt.date(2026, 7, 22), "N", False, dt.date(2026, 11, 9)),
        ("8864001", "p-left", "7", dt.date(2025, 9, 3), dt.date(2026, 7, 22), "N", False, dt.date(2026, 11, 9)),
        ("8864001", "p-not-yet", "7", dt.date(2026, 11, 12), dt.date(2026, 7, 22), "N", False, dt.date(2026, 11, 9)),
    ])
    assert list(on_roll(pupils, AS_OF)["pupil_ref"]) == ["p-swapped"]
