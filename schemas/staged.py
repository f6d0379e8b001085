"""Canonical pandera models of the staged tables, derived from the store's table metadata.

A staged frame is checked after a layout has mapped its columns onto the canonical names, so a new
layout never needs a new model. Column names, nullability and string lengths come from
`schemas.tables`; the business checks (sessions, categories, episode types, tokens...) are added
by column name. Dtypes of a staged frame:

- strings: `object` holding `str`;
- `Date` columns: `object` holding `datetime.date`;
- `DateTime` columns: `datetime64[ns, UTC]`;
- integers: nullable `Int64`; booleans: nullable `boolean`; binaries: `object` holding `bytes`.
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

import pandas as pd
import pandera.pandas as pa
from sqlalchemy import BigInteger, Boolean, Date, DateTime, Integer, LargeBinary, String, Table

from schemas import tables
from schemas.codes import CATEGORIES

STAGED_TABLES: dict[str, Table] = {
    t.name: t for t in (
        tables.staged_pupils, tables.staged_marks, tables.staged_sc_persons,
        tables.staged_sc_episodes, tables.staged_sc_allocations, tables.staged_camhs_referrals,
    )
}

SESSIONS = ("AM", "PM")
EPISODE_TYPES = ("CIN", "CPP", "CLA")
REFERRAL_STATUSES = ("waiting", "open", "closed")
SEN_PROVISION = ("N", "K", "E")
SEXES = ("M", "F", "U", "X")
TOKEN_PATTERN = r"^[0-9a-f]{64}$"

_TOKEN_COLUMNS = ("_token", "_ref")


def _is_date(value: object) -> bool:
    return isinstance(value, dt.date) and not isinstance(value, dt.datetime)


def _is_str(value: object) -> bool:
    return isinstance(value, str)


def _is_bytes(value: object) -> bool:
    return isinstance(value, (bytes, bytearray, memoryview))


# Each check comes with its proof: a test, on the list of a column's non-null values, that is True
# only when the check surely passes for every one of them. `passes_quickly` uses the proofs to let a
# clean frame (nearly every frame) skip pandera's per-check overhead; a frame any proof cannot clear
# goes through pandera, which then names the failures. Keep each pair saying the same thing. A
# proof may be stricter than its check (values of a subclass of str, say), never looser.
Proof = Callable[[list], bool]


def _only(*types: type) -> Proof:
    """Every value is exactly of one of `types` (a subclass is left to pandera)."""
    allowed = frozenset(types)
    return lambda values: set(map(type, values)) <= allowed


_only_str = _only(str)


def _str_matches(pattern: str) -> tuple[pa.Check, Proof]:
    match = re.compile(pattern).match      # pandera: Series.str.match, i.e. re.match
    return (pa.Check.str_matches(pattern, error=_PATTERN_ERRORS.get(pattern)),
            lambda values: _only_str(values) and all(map(match, values)))


def _str_length(min_value: int | None = None, max_value: int | None = None) -> tuple[pa.Check, Proof]:
    def proof(values: list) -> bool:
        if not values:
            return True
        if not _only_str(values):
            return False
        lengths = list(map(len, values))
        return (min_value is None or min(lengths) >= min_value) and (max_value is None or max(lengths) <= max_value)
    return pa.Check.str_length(min_value, max_value), proof


def _isin(allowed: tuple[str, ...]) -> tuple[pa.Check, Proof]:
    known = frozenset(allowed)
    return pa.Check.isin(allowed), lambda values: _only_str(values) and set(values) <= known


def _ge(minimum: int) -> tuple[pa.Check, Proof]:
    only_int = _only(int)
    return pa.Check.ge(minimum), lambda values: not values or (only_int(values) and min(values) >= minimum)


_PATTERN_ERRORS = {TOKEN_PATTERN: "a 64-hex token", r"^\d{7}$": "7 digits"}


def _business_checks(name: str) -> list[tuple[pa.Check, Proof]]:
    if name.endswith(_TOKEN_COLUMNS):
        return [_str_matches(TOKEN_PATTERN)]
    fixed = {
        "laestab": lambda: [_str_matches(r"^\d{7}$")],
        "destination_laestab": lambda: [_str_matches(r"^\d{7}$")],
        "session": lambda: [_isin(SESSIONS)],
        "category": lambda: [_isin(CATEGORIES)],
        "mark": lambda: [_str_length(1, 2)],
        "episode_type": lambda: [_isin(EPISODE_TYPES)],
        "referral_status": lambda: [_isin(REFERRAL_STATUSES)],
        "sen_provision": lambda: [_isin(SEN_PROVISION)],
        "sex": lambda: [_isin(SEXES)],
        "minutes_late": lambda: [_ge(0)],
        "row_number": lambda: [_ge(1)],
    }
    return fixed[name]() if name in fixed else []


def _element(predicate: Callable[[object], bool], error: str, proof: Proof) -> tuple[pa.Check, Proof]:
    return pa.Check(predicate, element_wise=True, error=error), proof


def _column_and_proofs(col) -> tuple[pa.Column, str | None, list[Proof]]:
    """The pandera column, the dtype a clean frame has there (None: object) and the proofs."""
    kind = col.type
    business = _business_checks(col.name)
    nullable = bool(col.nullable) and not col.primary_key
    if isinstance(kind, DateTime):
        dtype, pairs, coerce = "datetime64[ns, UTC]", business, True
    elif isinstance(kind, Date):
        dtype, pairs, coerce = None, [_element(_is_date, "a date", _only(dt.date))] + business, False
    elif isinstance(kind, (Integer, BigInteger)):
        dtype, pairs, coerce = "Int64", business, True
    elif isinstance(kind, Boolean):
        dtype, pairs, coerce = "boolean", business, True
    elif isinstance(kind, LargeBinary):
        binary = _element(_is_bytes, "bytes", _only(bytes, bytearray, memoryview))
        dtype, pairs, coerce = None, [binary] + business, False
    elif isinstance(kind, String):
        length = [_str_length(max_value=kind.length)] if kind.length else []
        dtype, pairs, coerce = None, [_element(_is_str, "a string", _only_str)] + length + business, False
    else:
        raise TypeError(f"staged column {col.name}: no pandera mapping for {kind!r}")
    column = pa.Column(dtype, checks=[check for check, _ in pairs], nullable=nullable, coerce=coerce)
    return column, dtype, [proof for _, proof in pairs]


def _column(col) -> pa.Column:
    return _column_and_proofs(col)[0]


def staged_schema(table: Table) -> pa.DataFrameSchema:
    """The pandera model of one staged table: exactly its columns, its primary key unique."""
    primary_key = [c.name for c in table.primary_key.columns]
    return pa.DataFrameSchema(
        {c.name: _column(c) for c in table.columns},
        strict=True,
        unique=primary_key or None,
        report_duplicates="all",
        name=table.name,
    )


STAGED_SCHEMAS: dict[str, pa.DataFrameSchema] = {name: staged_schema(t) for name, t in STAGED_TABLES.items()}

_PROOFS: dict[str, list[tuple[str, bool, str | None, list[Proof]]]] = {
    name: [(c.name, bool(c.nullable) and not c.primary_key, *_column_and_proofs(c)[1:]) for c in t.columns]
    for name, t in STAGED_TABLES.items()
}


def passes_quickly(table: str, frame: pd.DataFrame) -> bool:
    """True only when a frame already in staged dtypes (`coerce_staged`) surely passes the table's
    model: exactly its columns and dtypes, no null where none is allowed, every check of every
    non-null value proved, the primary key unique. False means "let pandera decide"."""
    columns = _PROOFS[table]
    if list(frame.columns) != [name for name, *_ in columns]:
        return False
    for name, nullable, dtype, proofs in columns:
        series = frame[name]
        if dtype is not None and str(series.dtype) != dtype:
            return False
        null = series.isna().to_numpy()
        if not nullable and null.any():
            return False
        if proofs:
            values = series.tolist()
            if null.any():
                values = [v for v, missing in zip(values, null) if not missing]
            if not all(proof(values) for proof in proofs):
                return False
    primary_key = [c.name for c in STAGED_TABLES[table].primary_key.columns]
    return not (primary_key and frame.duplicated(primary_key, keep=False).any())


_EMPTY_DTYPES = {DateTime: "datetime64[ns, UTC]", Integer: "Int64", BigInteger: "Int64", Boolean: "boolean"}


def staged_columns(table: str) -> list[str]:
    return [c.name for c in STAGED_TABLES[table].columns]


def coerce_staged(table: str, df: pd.DataFrame) -> pd.DataFrame:
    """The frame's staged columns in table order, with the staged dtypes (module docstring)."""
    columns: dict[str, object] = {}
    for col in STAGED_TABLES[table].columns:
        values = df[col.name] if col.name in df.columns else pd.Series([None] * len(df), index=df.index, dtype=object)
        dtype = next((d for k, d in _EMPTY_DTYPES.items() if isinstance(col.type, k)), None)
        if dtype == "datetime64[ns, UTC]":
            values = pd.to_datetime(values, utc=True).astype(dtype)
        elif dtype:
            values = values.astype(dtype)
        else:
            values = values.astype(object)
            missing = values.isna()
            if missing.any():
                values = values.where(~missing, None)
        columns[col.name] = values.array     # positions, not labels: the index may repeat
    return pd.DataFrame(columns, index=df.index)


def empty_staged_frame(table: str) -> pd.DataFrame:
    """A staged frame with no rows but the right columns and dtypes."""
    return coerce_staged(table, pd.DataFrame())
