"""The DfE attendance code table, versioned by session date (docs/dfe-rules.md#attendance-codes)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from importlib import resources
import tomllib

CATEGORIES = ("present", "aea", "authorised", "unauthorised", "not_possible")


@dataclass(frozen=True)
class AttendanceCode:
    code: str
    category: str
    meaning: str
    valid_from: dt.date | None = None
    valid_to: dt.date | None = None
    maps_to: str | None = None

    def in_force_on(self, session_date: dt.date) -> bool:
        if self.valid_from and session_date < self.valid_from:
            return False
        if self.valid_to and session_date > self.valid_to:
            return False
        return True


class CodeLookupError(ValueError):
    """A mark that is not a code in force on its session date."""


class CodeTable:
    """Resolve a register mark on a session date to its code in force and statistical category."""

    def __init__(self, codes: dict[str, AttendanceCode]):
        self.codes = codes

    @classmethod
    def from_mapping(cls, data: dict) -> "CodeTable":
        codes = {}
        for code, spec in data["codes"].items():
            if spec["category"] not in CATEGORIES:
                raise ValueError(f"attendance code {code!r}: unknown category {spec['category']!r}")
            codes[code] = AttendanceCode(
                code=code,
                category=spec["category"],
                meaning=spec.get("meaning", ""),
                valid_from=spec.get("valid_from"),
                valid_to=spec.get("valid_to"),
                maps_to=spec.get("maps_to"),
            )
        return cls(codes)

    def resolve(self, mark: str, session_date: dt.date) -> AttendanceCode:
        """The code a mark stands for on this date; withdrawn codes map to their successor.

        Raises CodeLookupError for an unknown mark, a lower-case mark, or a withdrawn code on a
        session after its withdrawal.
        """
        code = self.codes.get(mark)
        if code is None:
            if mark.upper() in self.codes:
                raise CodeLookupError(f"mark {mark!r} is lower case; codes are upper case ({mark.upper()!r})")
            raise CodeLookupError(f"mark {mark!r} is not a DfE attendance code")
        if not code.in_force_on(session_date):
            if code.valid_to and session_date > code.valid_to:
                raise CodeLookupError(f"mark {mark!r} was withdrawn on {code.valid_to + dt.timedelta(days=1)}")
            raise CodeLookupError(f"mark {mark!r} is not in force before {code.valid_from}")
        if code.maps_to:
            return self.codes[code.maps_to]
        return code

    def category(self, mark: str, session_date: dt.date) -> str:
        return self.resolve(mark, session_date).category

    def current_codes(self, on: dt.date) -> dict[str, AttendanceCode]:
        return {c: v for c, v in self.codes.items() if v.in_force_on(on) and not v.maps_to}


def builtin_code_table() -> CodeTable:
    text = resources.files("schemas").joinpath("defaults/attendance_codes.toml").read_text("utf-8")
    return CodeTable.from_mapping(tomllib.loads(text))
