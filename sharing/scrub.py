"""Scrub text and validation failure cases before anything logs or stores them.

pandera echoes the failing values of a check, exceptions quote what they choke on, and Dagster
metadata is visible to every operator: none of it may carry a name, date of birth, UPN, NHS number
or postcode (docs/architecture.md#where-plaintext-identity-may-exist). Failure cases keep their values only in columns known
to hold no personal data; text is masked by pattern.
"""
from __future__ import annotations

import re

import pandas as pd

from schemas.feeds import IDENTITY

REDACTED = "<redacted>"

# Staged columns whose values identify no one (codes, dates of events, flags, provenance).
SAFE_COLUMNS = frozenset({
    "laestab", "destination_laestab", "session_date", "session", "mark", "category", "minutes_late",
    "recorded_at", "source_id", "file_id", "row_number", "upn_valid", "nhs_valid", "key_id", "sex",
    "year_group", "admission_date", "leaving_date", "sen_provision", "fsm_eligible", "extract_date",
    "restricted", "episode_type", "start_date", "end_date", "legal_status", "reason_ended",
    "referral_date", "referral_status", "discharge_date", "team_id", "service_team",
})

_UPN = re.compile(r"\b[A-Za-z]\d{11}[A-Za-z0-9]\b")
_NHS = re.compile(r"\b\d{3}[ -]?\d{3}[ -]?\d{4}\b")
_POSTCODE = re.compile(r"\b[A-Za-z]{1,2}\d[A-Za-z\d]? ?\d[A-Za-z]{2}\b")
_DATES = (
    re.compile(r"\b\d{4}-\d{1,2}-\d{1,2}(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\b"),
    re.compile(r"\b\d{1,2}[/.\-]\d{1,2}[/.\-]\d{2,4}\b"),
    re.compile(r"\b(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\b"),
)


def scrub_text(text: object, *, dates: bool = True) -> str:
    """The text with UPN-like, NHS-number-like, postcode-like and (by default) date-like tokens masked."""
    out = str(text)
    out = _UPN.sub("<upn>", out)
    out = _NHS.sub("<nhs>", out)
    out = _POSTCODE.sub("<postcode>", out)
    if dates:
        for pattern in _DATES:
            out = pattern.sub("<date>", out)
    return out


def scrub_failure_cases(failure_cases: pd.DataFrame, safe_columns: frozenset[str] = SAFE_COLUMNS) -> pd.DataFrame:
    """A copy of pandera's failure cases with failing values of identity or unknown columns redacted.

    Values in columns of `safe_columns` are kept but still masked by pattern (a shifted row can put
    a UPN in any column); every other value, and every value of a dataframe-wide check, becomes
    '<redacted>'.
    """
    out = failure_cases.copy()
    if "failure_case" not in out.columns:
        return out
    columns = out["column"] if "column" in out.columns else pd.Series([None] * len(out), index=out.index)

    def _one(column: object, value: object) -> object:
        if value is None or (isinstance(value, float) and value != value):
            return value
        name = str(column) if column is not None else ""
        if name in IDENTITY or name not in safe_columns:
            return REDACTED
        return scrub_text(value, dates=False) if isinstance(value, str) else value

    out["failure_case"] = [_one(c, v) for c, v in zip(columns, out["failure_case"])]
    for text_column in ("check", "schema_context"):
        if text_column in out.columns:
            out[text_column] = [None if v is None else scrub_text(v, dates=False) for v in out[text_column]]
    return out
