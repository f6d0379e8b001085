"""Field values of the statutory returns: dates, sex codes, UPN placeholders, short codes.

Each parser returns the canonical value, or records a problem (field, reason) and returns None.
Reasons never quote the value: it may be a date of birth, a UPN or an LA child id.
"""
from __future__ import annotations

import datetime as dt
import re

# (field or None for the row as a whole, reason)
Problems = list[tuple[str | None, str]]

# CIN census `Sex` / `GenderCurrent` and SSDA903 `SEX`: 1 male, 2 female; 0 not known, 9 not stated.
_SEX = {"1": "M", "M": "M", "2": "F", "F": "F", "0": "U", "9": "U", "U": "U"}

# SSDA903 puts a reason code (UN1..UN7) in the UPN column when the UPN is not known.
_UPN_UNKNOWN = re.compile(r"^UN\d{1,2}$", re.IGNORECASE)

_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_UK_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")


def clean(value: str | None) -> str | None:
    """Surrounding whitespace removed; empty means absent."""
    if value is None:
        return None
    value = value.strip()
    return value or None


def iso_date(value: str | None, field: str, problems: Problems, *, required: bool = False) -> dt.date | None:
    """An XML schema date (YYYY-MM-DD), as the CIN census writes every date."""
    return _date(value, field, problems, _ISO_DATE, (0, 1, 2), "YYYY-MM-DD", required)


def uk_date(value: str | None, field: str, problems: Problems, *, required: bool = False) -> dt.date | None:
    """A dd/mm/yyyy date, as SSDA903 writes every date (leading zeros may have been lost)."""
    return _date(value, field, problems, _UK_DATE, (2, 1, 0), "dd/mm/yyyy", required)


def _date(value, field, problems, pattern, order, form, required):
    value = clean(value)
    if value is None:
        if required:
            problems.append((field, f"{field} is missing"))
        return None
    match = pattern.match(value)
    if match:
        year, month, day = (int(match.group(i + 1)) for i in order)
        try:
            return dt.date(year, month, day)
        except ValueError:
            pass
    problems.append((field, f"{field} is not a real date in {form} form"))
    return None


def not_before(start: dt.date | None, end: dt.date | None, start_field: str, end_field: str,
               problems: Problems) -> None:
    """An episode cannot end before it starts."""
    if start is not None and end is not None and end < start:
        problems.append((end_field, f"{end_field} is before {start_field}"))


def sex_code(value: str | None, field: str, problems: Problems) -> str | None:
    """'M', 'F' or 'U'; None when the return leaves it blank."""
    value = clean(value)
    if value is None:
        return None
    code = _SEX.get(value.upper())
    if code is None:
        problems.append((field, f"{field} is not a recognised sex code (1/M, 2/F, 0/9/U)"))
    return code


def upn(value: str | None) -> str | None:
    """The UPN as written, or None when blank or an 'unknown UPN' reason code."""
    value = clean(value)
    if value is None or _UPN_UNKNOWN.match(value):
        return None
    return value


def short_code(value: str | None, field: str, problems: Problems, *, max_len: int = 4) -> str | None:
    """A code such as a legal status or a reason an episode ended, upper-cased (so `e11` is `E11`)."""
    value = clean(value)
    if value is None:
        return None
    if len(value) > max_len:
        problems.append((field, f"{field} is longer than {max_len} characters"))
        return None
    return value.upper()
