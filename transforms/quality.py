"""Data-quality rules a data team expects, applied to a record as it is staged.

Each finding is a `DataQualityIssue` naming the row and the field and saying what is wrong, never
the value; the row is always kept. Findings that make a record unsafe to link on name and date of
birth also keep it out of `name_dob_token` (transforms/pseudonymise.py):

- A date of birth that cannot belong to the child: one that does not fit the year group in the
  academic year of the record (a parent's or a newborn sibling's date copied by mistake), or, with
  no year group, one giving an age outside `min_age_years`..`max_age_years` on the record's date.
  England: a child in year group N (Reception 0, nursery N1 -2 and N2 -1) is aged N + 4 on 31 August
  at the start of the academic year, so was born between 1 September and 31 August of known years;
  `year_group_tolerance_years` either side are allowed for children taught out of year group.
  The academic year of a record is the one containing its date (1 August to 31 July, as for the
  attendance measures); the record's date is the extract date of its file.
- A placeholder name (`Unknown`, `Baby Girl`, `Xxx`, a single letter, a name with no letters ...),
  from `schemas/defaults/data_quality.toml`, which an LA can override.

Two findings are recorded but do not affect linkage (the normalised name token ignores them):
- A name or registration group that a spreadsheet would run as a formula (`=`, `+`, `-`, `@` at
  the start). Stored and encrypted as given — it is what the source sent and the issue points at
  it — and neutralised by `sharing.spreadsheet.neutralise_formula` in anything written for people.
- A name with an embedded line break (a quoted CSV cell spanning lines). The encrypted identity
  holds the name with each run of whitespace, line breaks included, replaced by one space: the
  identity is used to address people by name, where a line break would split a message or a CSV
  row. The landed file keeps the bytes as sent.
"""
from __future__ import annotations

import datetime as dt
import re
import tomllib
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from schemas.calendar import academic_year_start
from sharing.spreadsheet import starts_like_formula

NAME_FIELDS = ("forename", "surname", "preferred_forename", "preferred_surname")
LINKAGE_NAME_FIELDS = ("forename", "surname")
FORMULA_FIELDS = NAME_FIELDS + ("reg_group",)
NOT_LINKED = "kept out of name-based linkage"

_IGNORED_IN_NAMES = re.compile(r"[\s.\-_',()\u2019]+")
_LINE_BREAKS = re.compile(r"[\n\r\v\f\x85\u2028\u2029]")
_NURSERY = {"N1": -2, "N2": -1, "R": 0}
_MAX_YEAR_GROUP = 14


@dataclass(frozen=True)
class QualityRules:
    year_group_tolerance_years: int = 1
    min_age_years: int = 0
    max_age_years: int = 25
    placeholders: frozenset[str] = frozenset()
    placeholder_patterns: tuple[re.Pattern, ...] = ()

    @classmethod
    def from_mapping(cls, data: dict, origin: str = "data_quality.toml") -> "QualityRules":
        dob = data.get("date_of_birth", {})
        names = data.get("names", {})
        try:
            patterns = tuple(re.compile(p) for p in names.get("placeholder_patterns", ()))
        except re.error as exc:
            raise ValueError(f"{origin}: [names] placeholder_patterns holds an invalid regular expression "
                             f"({exc})") from None
        for key in ("year_group_tolerance_years", "min_age_years", "max_age_years"):
            if key in dob and (not isinstance(dob[key], int) or isinstance(dob[key], bool) or dob[key] < 0):
                raise ValueError(f"{origin}: [date_of_birth] {key} must be a whole number of years, 0 or more")
        return cls(year_group_tolerance_years=dob.get("year_group_tolerance_years", 1),
                   min_age_years=dob.get("min_age_years", 0), max_age_years=dob.get("max_age_years", 25),
                   placeholders=frozenset(filter(None, map(name_key, names.get("placeholders", ())))),
                   placeholder_patterns=patterns)


@lru_cache(maxsize=1)
def builtin_rules() -> QualityRules:
    """The rules of schemas/defaults/data_quality.toml."""
    text = resources.files("schemas").joinpath("defaults/data_quality.toml").read_text("utf-8")
    return QualityRules.from_mapping(tomllib.loads(text), "built-in data_quality.toml")


# --- names -----------------------------------------------------------------------------------

def name_key(value: Any) -> str | None:
    """The form placeholders are compared in: accents folded, lower case, no spaces or . - _ ' , ( )."""
    if not isinstance(value, str):
        return None
    folded = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    return _IGNORED_IN_NAMES.sub("", folded.casefold()) or None


def placeholder_problem(fname: str, value: Any, rules: QualityRules) -> str | None:
    """Why a name is a placeholder rather than a name, or None (absent names are not issues)."""
    if not isinstance(value, str) or not value.strip():
        return None
    key = name_key(value)
    if key is None or not any(c.isalpha() for c in key):
        if any(c.isalpha() for c in value):       # letters outside ASCII only, e.g. a name in another script
            return None
        return f"{fname} holds no letters; {NOT_LINKED}"
    if key in rules.placeholders or any(p.fullmatch(key) for p in rules.placeholder_patterns):
        return f"{fname} is a placeholder, not a name; {NOT_LINKED}"
    return None


def has_line_break(value: Any) -> bool:
    return isinstance(value, str) and _LINE_BREAKS.search(value) is not None


def single_line(value: Any) -> Any:
    """A name with every run of whitespace (line breaks included) as one space; others unchanged."""
    return " ".join(value.split()) if has_line_break(value) else value


def text_problems(row: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, issue) for formula-like values and names with line breaks in one row's fields."""
    found = []
    for fname in FORMULA_FIELDS:
        if starts_like_formula(row.get(fname)):
            found.append((fname, f"{fname} starts with a character a spreadsheet runs as a formula "
                                 f"(=, +, - or @); stored as sent, neutralised in exports"))
    for fname in NAME_FIELDS:
        if has_line_break(row.get(fname)):
            found.append((fname, f"{fname} contains a line break; stored with it replaced by a space"))
    return found


# --- dates of birth --------------------------------------------------------------------------

def year_offset(year_group: Any) -> int | None:
    """Years after Reception of a normalised year group (R 0, N1 -2, N2 -1, '7' 7); None if unknown."""
    if not isinstance(year_group, str):
        return None
    code = year_group.strip().upper()
    if code in _NURSERY:
        return _NURSERY[code]
    if code.isdigit() and 1 <= int(code) <= _MAX_YEAR_GROUP:
        return int(code)
    return None


def academic_year(on: dt.date) -> int:
    """The calendar year in which the academic year containing `on` starts."""
    return academic_year_start(on).year


def year_group_birth_dates(offset: int, year: int) -> tuple[dt.date, dt.date]:
    """First and last birth date of a child in year group `offset` in academic year `year`/`year+1`.

    Aged offset + 4 on 31 August `year`: born 1 September `year - offset - 5` .. 31 August `year - offset - 4`.
    """
    return dt.date(year - offset - 5, 9, 1), dt.date(year - offset - 4, 8, 31)


def _label(offset: int) -> str:
    return {-2: "N1", -1: "N2", 0: "R (Reception)"}.get(offset, str(offset))


def _age_on(dob: dt.date, on: dt.date) -> int:
    return on.year - dob.year - ((on.month, on.day) < (dob.month, dob.day))


def dob_problem(dob: Any, year_group: Any, on: dt.date | None, rules: QualityRules) -> str | None:
    """Why a date of birth cannot belong to this child on the record's date `on`, or None.

    None too when there is no date of birth or no record date to judge it by.
    """
    if not isinstance(dob, dt.date) or isinstance(dob, dt.datetime) or on is None:
        return None
    if dob > on:
        return f"dob is after the record's date; {NOT_LINKED}"
    offset = year_offset(year_group)
    if offset is not None:
        year = academic_year(on)
        first, last = year_group_birth_dates(offset, year)
        tolerance = rules.year_group_tolerance_years
        allowance = f"{tolerance} year{'s' if tolerance != 1 else ''} either side allowed"
        if dob < first.replace(year=first.year - tolerance):
            return (f"dob makes the child too old for year group {_label(offset)} in {year}/{(year + 1) % 100:02d} "
                    f"({allowance}); {NOT_LINKED}")
        if dob > last.replace(year=last.year + tolerance):
            return (f"dob makes the child too young for year group {_label(offset)} in {year}/{(year + 1) % 100:02d} "
                    f"({allowance}); {NOT_LINKED}")
        return None
    age = _age_on(dob, on)
    if age < rules.min_age_years:
        return f"dob gives an age under {rules.min_age_years} on the record's date (no year group); {NOT_LINKED}"
    if age > rules.max_age_years:
        return f"dob gives an age over {rules.max_age_years} on the record's date (no year group); {NOT_LINKED}"
    return None
