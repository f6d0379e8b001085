"""Normalise one field value from a feed into its canonical form.

Each function takes the stripped text of one cell (never empty: the reader turns empty cells into
None first) and returns the canonical value, or raises `FieldProblem` with a reason that names the
field's expectation and never echoes the value, so it can be stored and logged.
"""
from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")

_TRUE = frozenset({"Y", "YES", "TRUE", "T", "1"})
_FALSE = frozenset({"N", "NO", "FALSE", "F", "0"})
_SEX = {
    "M": "M", "MALE": "M", "BOY": "M",
    "F": "F", "FEMALE": "F", "GIRL": "F",
    "U": "U", "UNKNOWN": "U", "NOT KNOWN": "U", "NOT STATED": "U", "9": "U", "0": "U",
    "X": "X", "I": "X", "INDETERMINATE": "X", "OTHER": "X",
}
_SEN = {
    "N": "N", "NONE": "N", "NO SEN": "N",
    "K": "K", "SEN SUPPORT": "K",
    "E": "E", "EHC PLAN": "E", "EHCP": "E",
}
_YEAR = re.compile(r"^(?:YEAR|YR|Y|NC)\s*(\d{1,2})$")
_NON_DIGIT = re.compile(r"\D")
_SPACES = re.compile(r"\s+")


class FieldProblem(ValueError):
    """A cell that cannot be read as its canonical type; the message never holds the value."""


def human_date_format(fmt: str) -> str:
    """`%d/%m/%Y` -> `dd/mm/yyyy`, for reasons a data team can act on."""
    return (fmt.replace("%d", "dd").replace("%m", "mm").replace("%Y", "yyyy").replace("%y", "yy")
            .replace("%H", "HH").replace("%M", "MM").replace("%S", "SS"))


# Formats read without strptime when a value is exactly in them (zero-padded ASCII digits): the
# (year, month, day) slices of the text. Anything else, or an impossible date, goes to strptime.
_PLAIN_DATES = {
    "%Y-%m-%d": ("-", (4, 7), (slice(0, 4), slice(5, 7), slice(8, 10))),
    "%d/%m/%Y": ("/", (2, 5), (slice(6, 10), slice(3, 5), slice(0, 2))),
}


def parse_date(value: str, fmt: str) -> dt.date:
    plain = _PLAIN_DATES.get(fmt)
    if plain is not None and len(value) == 10 and value.isascii():
        sep, (a, b), (year, month, day) = plain
        if value[a] == sep and value[b] == sep and (value[year] + value[month] + value[day]).isdigit():
            try:
                return dt.date(int(value[year]), int(value[month]), int(value[day]))
            except ValueError:
                pass    # strptime says why
    try:
        return dt.datetime.strptime(value, fmt).date()
    except ValueError:
        raise FieldProblem(f"not a valid date in the format {human_date_format(fmt)}") from None


def parse_datetime(value: str, fmt: str = "iso8601") -> dt.datetime:
    """An aware UTC datetime; a naive value is wall-clock time in Europe/London."""
    try:
        parsed = dt.datetime.fromisoformat(value) if fmt == "iso8601" else dt.datetime.strptime(value, fmt)
    except ValueError:
        expected = "ISO 8601" if fmt == "iso8601" else human_date_format(fmt)
        raise FieldProblem(f"not a valid date-time in the format {expected}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=LONDON)
    return parsed.astimezone(dt.timezone.utc)


def parse_int(value: str) -> int:
    try:
        number = float(value)
    except ValueError:
        raise FieldProblem("not a whole number") from None
    if number != number or number != int(number):
        raise FieldProblem("not a whole number")
    return int(number)


def parse_bool(value: str) -> bool:
    key = value.upper()
    if key in _TRUE:
        return True
    if key in _FALSE:
        return False
    raise FieldProblem("not one of Y/N, true/false, 1/0")


def normalise_sex(value: str) -> str:
    out = _SEX.get(_SPACES.sub(" ", value.upper()))
    if out is None:
        raise FieldProblem("not a recognised sex (M, F, U or X)")
    return out


def normalise_sen(value: str) -> str:
    out = _SEN.get(_SPACES.sub(" ", value.upper()))
    if out is None:
        raise FieldProblem("not a recognised SEN provision (N, K or E)")
    return out


def normalise_year_group(value: str) -> str:
    """`Year 7`, `Y7`, `7` -> `7`; `Reception` -> `R`; other short codes (N1, N2) kept."""
    key = _SPACES.sub(" ", value.upper())
    if key in {"R", "REC", "RECEPTION", "YR R", "YEAR R"}:
        return "R"
    match = _YEAR.match(key)
    if match:
        return str(int(match.group(1)))
    if key.isdigit():
        return str(int(key))
    if len(key) > 4:
        raise FieldProblem("not a recognised year group")
    return key


def normalise_laestab(value: str) -> str:
    """`886/4001` or `8864001` -> `8864001`."""
    digits = _NON_DIGIT.sub("", value)
    if len(digits) != 7:
        raise FieldProblem("not a 7-digit LAESTAB")
    return digits


def normalise_postcode(value: str) -> str:
    """Upper case with one space before the inward code (`ct11aa` -> `CT1 1AA`)."""
    compact = _SPACES.sub("", value.upper())
    return f"{compact[:-3]} {compact[-3:]}" if len(compact) > 3 else compact


def normalise_code(value: str, allowed: tuple[str, ...], *, lower: bool = False) -> str:
    key = value.lower() if lower else value.upper()
    if key not in allowed:
        raise FieldProblem(f"not one of {', '.join(allowed)}")
    return key


def london_time(day: dt.date, hhmm: str | None, default: dt.time = dt.time(18, 0)) -> dt.datetime:
    """The Europe/London moment of an extract (`HHMM`, or the nightly default), as aware UTC."""
    at = dt.time(int(hhmm[:2]), int(hhmm[2:4])) if hhmm else default
    return dt.datetime.combine(day, at, tzinfo=LONDON).astimezone(dt.timezone.utc)
