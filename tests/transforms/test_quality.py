"""Data-quality rules: dates of birth against year groups and age, placeholder names, formula
values and line breaks (transforms/quality.py), with hand-computed birth-date windows."""
import datetime as dt

import pandas as pd
import pytest

from sharing.crypto import decrypt_json
from sharing.keys import KeyRing
from sharing.tokens import name_dob_token
from transforms.pseudonymise import identity_columns
from transforms.quality import (
    QualityRules, builtin_rules, dob_problem, placeholder_problem, text_problems, year_group_birth_dates,
    year_offset,
)

KEYS = KeyRing(bytes(range(32)), bytes(range(32, 64)))
RULES = builtin_rules()
STRICT = QualityRules.from_mapping({"date_of_birth": {"year_group_tolerance_years": 0}})
ON = dt.date(2026, 11, 27)          # academic year 2026/27


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


# --- year groups --------------------------------------------------------------------------------

def test_year_offsets():
    assert [year_offset(v) for v in ("N1", "N2", "R", "1", "6", "11", "13", "14")] == [-2, -1, 0, 1, 6, 11, 13, 14]
    assert [year_offset(v) for v in ("SP", "15", "0", "", None)] == [None] * 5


def test_year_group_birth_windows():
    # Year 5 in 2026/27: aged 9 on 31 Aug 2026, born 1 Sep 2016 .. 31 Aug 2017.
    assert year_group_birth_dates(5, 2026) == (d("2016-09-01"), d("2017-08-31"))
    # Reception: aged 4 on 31 Aug 2026, born 1 Sep 2021 .. 31 Aug 2022.
    assert year_group_birth_dates(0, 2026) == (d("2021-09-01"), d("2022-08-31"))
    # Nursery N1 (aged 2) and N2 (aged 3).
    assert year_group_birth_dates(-2, 2026) == (d("2023-09-01"), d("2024-08-31"))
    assert year_group_birth_dates(-1, 2026) == (d("2022-09-01"), d("2023-08-31"))


@pytest.mark.parametrize("dob, problem", [
    ("2016-09-01", None), ("2017-08-31", None),              # the year group's own first and last birthdays
    ("2016-08-31", "too old"), ("2017-09-01", "too young"),  # a day either side: the year above / below
])
def test_31_august_and_1_september_birthdays_without_tolerance(dob, problem):
    got = dob_problem(d(dob), "5", ON, STRICT)
    assert (got is None) if problem is None else (problem in got), got


@pytest.mark.parametrize("dob, problem", [
    ("2015-09-01", None), ("2018-08-31", None),              # one year either side is allowed
    ("2015-08-31", "too old"), ("2018-09-01", "too young"),
])
def test_one_year_tolerance_either_side(dob, problem):
    got = dob_problem(d(dob), "5", ON, RULES)
    assert (got is None) if problem is None else (problem in got), got


def test_reception_and_nursery():
    assert dob_problem(d("2022-08-31"), "R", ON, STRICT) is None
    assert "too young for year group R (Reception) in 2026/27" in dob_problem(d("2022-09-01"), "R", ON, STRICT)
    assert "too old" in dob_problem(d("2021-08-31"), "R", ON, STRICT)
    assert dob_problem(d("2024-08-31"), "N1", ON, STRICT) is None
    assert "too young for year group N1" in dob_problem(d("2024-09-01"), "N1", ON, STRICT)
    assert dob_problem(d("2022-09-01"), "N2", ON, STRICT) is None


def test_the_academic_year_is_the_records():
    # 31 Jul 2026 is in 2025/26 (year 5 born 1 Sep 2015 .. 31 Aug 2016); 1 Aug 2026 in 2026/27.
    assert dob_problem(d("2015-09-01"), "5", d("2026-07-31"), STRICT) is None
    assert "too old" in dob_problem(d("2015-09-01"), "5", d("2026-08-01"), STRICT)


def test_a_parents_or_a_newborn_siblings_date_is_caught():
    parent = dob_problem(d("1988-03-14"), "5", ON, RULES)
    sibling = dob_problem(d("2026-06-01"), "5", ON, RULES)
    assert parent == ("dob makes the child too old for year group 5 in 2026/27 (1 year either side allowed); "
                      "kept out of name-based linkage")
    assert sibling.startswith("dob makes the child too young for year group 5")
    assert "1988" not in parent and "2026-06" not in sibling


def test_without_a_year_group_the_age_must_be_0_to_25_on_the_records_date():
    assert dob_problem(d("2026-11-27"), None, ON, RULES) is None           # born today: social care holds newborns
    assert dob_problem(d("2000-11-28"), None, ON, RULES) is None           # 25, 26 tomorrow
    assert "over 25" in dob_problem(d("2000-11-27"), None, ON, RULES)      # 26 today
    assert "over 25" in dob_problem(d("1990-11-27"), "SP", ON, RULES)      # an unknown year group: age rule
    assert "after the record's date" in dob_problem(d("2026-11-28"), None, ON, RULES)
    rules = QualityRules.from_mapping({"date_of_birth": {"min_age_years": 2}})
    assert "under 2" in dob_problem(d("2024-11-28"), None, ON, rules)      # 1 year 364 days old
    assert dob_problem(d("2024-11-27"), None, ON, rules) is None           # 2 today


def test_no_date_of_birth_or_no_record_date_is_not_judged():
    assert dob_problem(None, "5", ON, RULES) is None
    assert dob_problem(d("1988-03-14"), "5", None, RULES) is None


def test_age_bounds_and_tolerance_are_configurable():
    rules = QualityRules.from_mapping({"date_of_birth": {"min_age_years": 0, "max_age_years": 30,
                                                         "year_group_tolerance_years": 2}})
    assert dob_problem(d("2026-01-01"), None, ON, rules) is None
    assert dob_problem(d("1997-01-01"), None, ON, rules) is None
    assert dob_problem(d("2014-09-01"), "5", ON, rules) is None
    with pytest.raises(ValueError, match="min_age_years must be a whole number"):
        QualityRules.from_mapping({"date_of_birth": {"min_age_years": "two"}})


# --- placeholder names ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", [
    "Anon", "Anonymous", "Unknown", "UNKNOWN", "Not Known", "NOT-KNOWN", "not known.", "NK", "Male Child",
    "Female Child", "Baby", "Baby Boy", "Baby Girl", "baby girl", "Baby 2", "Baby of Smith", "Child", "Twin 1",
    "Unborn baby", "Xxx", "XX", "x", "Test", "Test3", "TBC", "Null", "NULL", "N/A", "n/a", "J", "J.", " K ",
    "?", "123", "--",
])
def test_each_placeholder_form_is_caught(name):
    got = placeholder_problem("forename", name, RULES)
    assert got is not None and got.endswith("kept out of name-based linkage"), name
    assert name.strip() not in got


@pytest.mark.parametrize("name", [
    "Na", "Ng", "Li", "Xi", "Jo", "Xavier", "Anna", "O'Brien", "Testa", "Childs", "Babyface", "Łucja",
    "Zoë", "Nkechi", "李", "Anne-Marie", "Tbilisi",
])
def test_real_names_are_not_placeholders(name):
    assert placeholder_problem("surname", name, RULES) is None, name


def test_placeholders_are_configurable():
    rules = QualityRules.from_mapping({"names": {"placeholders": ["Name Withheld"], "placeholder_patterns": []}})
    assert placeholder_problem("surname", "NAME WITHHELD", rules) is not None
    assert placeholder_problem("surname", "Unknown", rules) is None
    with pytest.raises(ValueError, match="placeholder_patterns holds an invalid regular expression"):
        QualityRules.from_mapping({"names": {"placeholder_patterns": ["("]}})


# --- formula values and line breaks -------------------------------------------------------------

def test_formula_values_and_line_breaks():
    found = text_problems({"forename": "=HYPERLINK(\"x\")", "surname": "Smith\r\nJones", "reg_group": "@5W",
                           "preferred_forename": "-", "preferred_surname": "Anne-Marie"})
    assert [f for f, _ in found] == ["forename", "preferred_forename", "reg_group", "surname"]
    assert all("HYPERLINK" not in issue and "Smith" not in issue for _, issue in found)
    assert "formula" in found[0][1] and "line break" in found[3][1]
    assert text_problems({"forename": "+Zoë"})[0][0] == "forename"
    assert text_problems({"forename": "Zoë", "reg_group": "5W"}) == []


# --- identity_columns: kept out of the name + date-of-birth key -----------------------------------

def frame(**fields):
    base = {"upn": None, "forename": "Zoë", "surname": "Brontë", "dob": dt.date(2016, 10, 3), "year_group": "5",
            "row_number": 7}
    return pd.DataFrame([{**base, **fields}], dtype=object)


def issues_of(issues):
    return [(i.row_number, i.field) for i in issues]


def test_a_fitting_record_keeps_its_name_dob_token():
    ids, issues = identity_columns(frame(), KEYS, on=ON)
    assert issues == []
    assert ids.iloc[0]["name_dob_token"] == name_dob_token(KEYS.token_key, "Zoë", "Brontë", dt.date(2016, 10, 3))


def test_a_dob_that_does_not_fit_the_year_group_gives_no_name_dob_token():
    ids, issues = identity_columns(frame(dob=dt.date(1988, 3, 14)), KEYS, on=ON)
    assert ids.iloc[0]["name_dob_token"] is None
    assert issues_of(issues) == [(7, "dob")] and "too old for year group 5" in issues[0].issue
    assert decrypt_json(KEYS.identity_key, ids.iloc[0]["identity_enc"])["dob"] == "1988-03-14"   # kept as sent


def test_without_a_record_date_the_dob_is_not_judged():
    ids, issues = identity_columns(frame(dob=dt.date(1988, 3, 14)), KEYS)
    assert issues == [] and ids.iloc[0]["name_dob_token"] is not None


def test_without_a_year_group_column_the_age_rule_applies():
    f = frame(dob=dt.date(1990, 1, 1)).drop(columns="year_group")
    ids, issues = identity_columns(f, KEYS, on=ON)
    assert ids.iloc[0]["name_dob_token"] is None and "over 25" in issues[0].issue


@pytest.mark.parametrize("field", ["forename", "surname"])
def test_a_placeholder_forename_or_surname_gives_no_name_dob_token(field):
    ids, issues = identity_columns(frame(**{field: "Baby Girl"}), KEYS, on=ON)
    assert ids.iloc[0]["name_dob_token"] is None
    assert issues_of(issues) == [(7, field)] and "placeholder" in issues[0].issue


def test_a_formula_name_is_reported_and_stored_as_sent():
    ids, issues = identity_columns(frame(surname="=Brontë"), KEYS, on=ON)
    assert issues_of(issues) == [(7, "surname")] and "formula" in issues[0].issue
    assert decrypt_json(KEYS.identity_key, ids.iloc[0]["identity_enc"])["surname"] == "=Brontë"
    assert ids.iloc[0]["name_dob_token"] is not None


def test_a_name_with_a_line_break_is_stored_on_one_line():
    ids, issues = identity_columns(frame(surname="Brontë\nSmith"), KEYS, on=ON)
    assert issues_of(issues) == [(7, "surname")] and "line break" in issues[0].issue
    assert decrypt_json(KEYS.identity_key, ids.iloc[0]["identity_enc"])["surname"] == "Brontë Smith"
    assert ids.iloc[0]["name_dob_token"] == name_dob_token(KEYS.token_key, "Zoë", "Brontë Smith",
                                                           dt.date(2016, 10, 3))
