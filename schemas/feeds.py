"""Canonical fields of each feed: what a layout maps a file's columns onto.

Types: `str`, `date`, `datetime`, `int`, `bool` (Y/N, true/false, 1/0), `session` (mapped through
the layout's session labels to AM/PM), `mark` (an attendance code). Identity fields (`IDENTITY`)
exist in plaintext only in memory between reading and pseudonymising.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldSpec:
    type: str
    required: bool = True


def _f(type_: str, required: bool = True) -> FieldSpec:
    return FieldSpec(type_, required)


FEEDS: dict[str, dict[str, FieldSpec]] = {
    "attendance": {
        "school_pupil_id": _f("str"),
        "upn": _f("str", False),
        "surname": _f("str", False),
        "forename": _f("str", False),
        "dob": _f("date", False),
        "sex": _f("str", False),
        "year_group": _f("str", False),
        "reg_group": _f("str", False),
        "session_date": _f("date"),
        "session": _f("session"),
        "mark": _f("mark"),
        "minutes_late": _f("int", False),
        "updated_at": _f("datetime", False),
    },
    "pupils": {
        "school_pupil_id": _f("str"),
        "upn": _f("str", False),
        "former_upn": _f("str", False),
        "surname": _f("str"),
        "forename": _f("str"),
        "preferred_surname": _f("str", False),
        "preferred_forename": _f("str", False),
        "dob": _f("date"),
        "sex": _f("str", False),
        "postcode": _f("str", False),
        "year_group": _f("str", False),
        "admission_date": _f("date", False),
        "leaving_date": _f("date", False),
        "sen_provision": _f("str", False),
        "fsm_eligible": _f("bool", False),
        "nhs_number": _f("str", False),
        "destination_laestab": _f("str", False),
    },
    "sc_persons": {
        "person_id": _f("str"),
        "upn": _f("str", False),
        "nhs_number": _f("str", False),
        "forename": _f("str", False),
        "surname": _f("str", False),
        "dob": _f("date", False),
        "sex": _f("str", False),
        "postcode": _f("str", False),
        "restricted": _f("bool", False),
    },
    "sc_episodes": {
        "person_id": _f("str"),
        "episode_id": _f("str"),
        "episode_type": _f("str"),
        "start_date": _f("date"),
        "end_date": _f("date", False),
        "legal_status": _f("str", False),
        "reason_ended": _f("str", False),
    },
    "sc_allocations": {
        "person_id": _f("str"),
        "worker_id": _f("str"),
        "worker_name": _f("str", False),
        "worker_email": _f("str", False),
        "team_id": _f("str", False),
        "team_name": _f("str", False),
        "start_date": _f("date"),
        "end_date": _f("date", False),
    },
    "camhs_referrals": {
        "nhs_number": _f("str", False),
        "local_patient_id": _f("str"),
        "forename": _f("str", False),
        "surname": _f("str", False),
        "dob": _f("date", False),
        "sex": _f("str", False),
        "postcode": _f("str", False),
        "referral_id": _f("str"),
        "referral_date": _f("date"),
        "referral_status": _f("str"),
        "discharge_date": _f("date", False),
        "service_team": _f("str", False),
        "team_contact": _f("str", False),
    },
}

# Fields that identify a person: never logged, never stored in plaintext.
IDENTITY = frozenset({
    "upn", "former_upn", "surname", "forename", "preferred_surname", "preferred_forename",
    "dob", "postcode", "nhs_number", "person_id", "local_patient_id", "school_pupil_id",
})

# Statutory returns are read by their own readers (not a column layout); a source names them in
# place of a layout. Each stages social-care persons and/or episodes.
STATUTORY_READERS = {
    "cin-census": "Children in Need census XML: persons, CIN and CPP episodes",
    "ssda903-header": "SSDA903 header CSV: looked-after children",
    "ssda903-episodes": "SSDA903 episodes CSV: CLA episodes, legal status, reason ended",
}

# The relations an ODBC source is read as (docs/layouts.md#school-mis-over-odbc): their fields, then which of them
# must be mapped. connectors/odbc.py reads them; sources.toml maps them onto the database's columns.
ODBC_RELATIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "pupils": (("pupil_id", "upn", "legal_surname", "legal_forename", "preferred_forename", "dob", "sex",
                "postcode", "year_group", "admission_date", "leaving_date", "sen_provision", "fsm_eligible"),
               ("pupil_id", "legal_surname", "legal_forename", "dob")),
    "marks": (("pupil_id", "session_date", "session", "mark", "minutes_late", "last_modified"),
              ("pupil_id", "session_date", "session", "mark")),
}
