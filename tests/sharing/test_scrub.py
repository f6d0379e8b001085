"""Scrubbing of text and pandera failure cases before anything logs them."""
import pandas as pd

from sharing.scrub import REDACTED, scrub_failure_cases, scrub_text


def test_scrub_text_masks_identifiers_dates_and_postcodes():
    text = ("UPN B801200005001 nhs 943 476 5870 / 9434765870 born 03/04/2015 or 2015-04-03T10:00:00Z "
            "or 20150403 lives CT1 1AA; row 12 of 8864001")
    assert scrub_text(text) == ("UPN <upn> nhs <nhs> / <nhs> born <date> or <date> or <date> lives <postcode>; "
                                "row 12 of 8864001")


def test_scrub_text_can_keep_dates():
    assert scrub_text("session 2024-09-02 for B801200005001", dates=False) == "session 2024-09-02 for <upn>"


def test_failure_cases_redacted_outside_safe_columns():
    cases = pd.DataFrame({
        "schema_context": ["Column", "Column", "Column", "DataFrameSchema"],
        "column": ["session", "pupil_ref", "worker_name", None],
        "check": ["isin(['AM', 'PM'])", "str_matches", "str_length", "column_in_schema"],
        "check_number": [0, 0, 0, None],
        "failure_case": ["XX", "B801200005001", "Sam Worker", "surname"],
        "index": [0, 1, 2, None],
    })
    out = scrub_failure_cases(cases)
    assert list(out["failure_case"]) == ["XX", REDACTED, REDACTED, REDACTED]
    assert cases.loc[1, "failure_case"] == "B801200005001"      # the input is not changed


def test_safe_column_still_masks_identifier_patterns():
    cases = pd.DataFrame({"column": ["reg_group", "year_group"], "failure_case": ["x", "B801200005001"],
                          "check": ["c", "c"], "index": [0, 1]})
    assert list(scrub_failure_cases(cases)["failure_case"]) == [REDACTED, "<upn>"]
