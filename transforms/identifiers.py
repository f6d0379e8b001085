"""Format checks of the national identifiers a record may carry: UPN and NHS number.

An identifier that fails its check is never tokenised: a mistyped UPN could equal another
child's, and a link on it would merge two children (docs/dfe-rules.md#identifiers). The problems returned
here name what is wrong, never the identifier itself, so they can be logged and stored.
"""
from __future__ import annotations

import re
import tomllib
from functools import lru_cache
from importlib import resources

from stdnum.exceptions import InvalidChecksum, InvalidFormat, InvalidLength
from stdnum.gb import nhs as stdnum_nhs
from stdnum.gb import upn as stdnum_upn

UPN_LENGTH = 13
NHS_LENGTH = 10
_UPN_LETTERS = "ABCDEFGHJKLMNPQRTUVWXYZ"    # no I, O, S
_SEPARATORS = re.compile(r"[\s\-]")


@lru_cache(maxsize=1)
def builtin_la_numbers() -> frozenset[str]:
    """The LA numbers accepted in a UPN, from schemas/defaults/la_numbers.toml."""
    text = resources.files("schemas").joinpath("defaults/la_numbers.toml").read_text("utf-8")
    return la_numbers_from_mapping(tomllib.loads(text))


def la_numbers_from_mapping(data: dict) -> frozenset[str]:
    """Numbers of every table in the mapping whose `accept` is not false."""
    out: set[str] = set()
    for group in data.values():
        if isinstance(group, dict) and group.get("accept", True):
            out.update(str(n).zfill(3) for n in group.get("numbers", {}))
    return frozenset(out)


def compact_identifier(value: str | None) -> str | None:
    """Upper case without spaces or hyphens; None when nothing is left."""
    if value is None:
        return None
    out = _SEPARATORS.sub("", str(value)).upper()
    return out or None


def upn_problem(upn: str | None, la_numbers: frozenset[str] | None = None) -> str | None:
    """What is wrong with a UPN, or None when it is valid in format.

    Checks length, character classes, the LA number (against our own table) and the check
    letter (python-stdnum). A temporary UPN, whose last character is a letter, is valid format.
    """
    number = compact_identifier(upn)
    if number is None:
        return "UPN is empty"
    if len(number) != UPN_LENGTH:
        return f"UPN is not {UPN_LENGTH} characters long"
    if number[0] not in _UPN_LETTERS:
        return "UPN does not start with a check letter"
    if not number[1:12].isdigit():
        return "UPN characters 2 to 12 are not all digits"
    if not (number[12].isdigit() or number[12] in _UPN_LETTERS):
        return "UPN last character is neither a digit nor a permitted letter"
    if number[1:4] not in (builtin_la_numbers() if la_numbers is None else la_numbers):
        return "UPN LA number is not a known local authority"
    if stdnum_upn.calc_check_digit(number[1:]) != number[0]:
        return "UPN check letter invalid"
    return None


def is_valid_upn(upn: str | None, la_numbers: frozenset[str] | None = None) -> bool:
    return upn_problem(upn, la_numbers) is None


def nhs_number_problem(nhs: str | None) -> str | None:
    """What is wrong with an NHS number, or None when it is valid in format (python-stdnum's
    `stdnum.gb.nhs`: ten digits, modulus-11 check digit with weights 10 to 2)."""
    number = compact_identifier(nhs)
    if number is None:
        return "NHS number is empty"
    try:
        stdnum_nhs.validate(number)
    except InvalidLength:       # a subclass of InvalidFormat: caught first
        return f"NHS number is not {NHS_LENGTH} digits long"
    except InvalidFormat:
        return "NHS number is not all digits"
    except InvalidChecksum:
        # The check digit must bring the weighted sum to 0 mod 11; with a remainder of 1 after the
        # first nine digits it would have to be 10, so no number starting with them is valid.
        if stdnum_nhs.checksum(number[:9] + "0") == 1:
            return "NHS number cannot be valid (check digit would be 10)"
        return "NHS number check digit invalid"
    return None


def is_valid_nhs_number(nhs: str | None) -> bool:
    return nhs_number_problem(nhs) is None
