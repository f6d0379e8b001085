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


def _business_checks(name: str) -> list[pa.Check]:
    if name.endswith(_TOKEN_COLUMNS):
        return [pa.Check.str_matches(TOKEN_PATTERN, error="a 64-hex token")]
    fixed = {
        "laestab": [pa.Check.str_matches(r"^\d{7}$", error="7 digits")],
        "destination_laestab": [pa.Check.str_matches(r"^\d{7}$", error="7 digits")],
        "session": [pa.Check.isin(SESSIONS)],
        "category": [pa.Check.isin(CATEGORIES)],
        "mark": [pa.Check.str_length(1, 2)],
        "episode_type": [pa.Check.isin(EPISODE_TYPES)],
        "referral_status": [pa.Check.isin(REFERRAL_STATUSES)],
        "sen_provision": [pa.Check.isin(SEN_PROVISION)],
        "sex": [pa.Check.isin(SEXES)],
        "minutes_late": [pa.Check.ge(0)],
        "row_number": [pa.Check.ge(1)],
    }
    return fixed.get(name, [])


def _column(col) -> pa.Column:
    kind = col.type
    checks = _business_checks(col.name)
    nullable = bool(col.nullable) and not col.primary_key
    if isinstance(kind, DateTime):
        return pa.Column("datetime64[ns, UTC]", checks=checks, nullable=nullable, coerce=True)
    if isinstance(kind, Date):
        return pa.Column(None, checks=[pa.Check(_is_date, element_wise=True, error="a date")] + checks,
                         nullable=nullable)
    if isinstance(kind, (Integer, BigInteger)):
        return pa.Column("Int64", checks=checks, nullable=nullable, coerce=True)
    if isinstance(kind, Boolean):
        return pa.Column("boolean", checks=checks, nullable=nullable, coerce=True)
    if isinstance(kind, LargeBinary):
        return pa.Column(None, checks=[pa.Check(_is_bytes, element_wise=True, error="bytes")] + checks,
                         nullable=nullable)
    if isinstance(kind, String):
        length = [pa.Check.str_length(max_value=kind.length)] if kind.length else []
        return pa.Column(None, checks=[pa.Check(_is_str, element_wise=True, error="a string")] + length + checks,
                         nullable=nullable)
    raise TypeError(f"staged column {col.name}: no pandera mapping for {kind!r}")


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

_EMPTY_DTYPES = {DateTime: "datetime64[ns, UTC]", Integer: "Int64", BigInteger: "Int64", Boolean: "boolean"}


def staged_columns(table: str) -> list[str]:
    return [c.name for c in STAGED_TABLES[table].columns]


def coerce_staged(table: str, df: pd.DataFrame) -> pd.DataFrame:
    """The frame's staged columns in table order, with the staged dtypes (module docstring)."""
    out = pd.DataFrame(index=df.index)
    for col in STAGED_TABLES[table].columns:
        values = df[col.name] if col.name in df.columns else pd.Series([None] * len(df), index=df.index, dtype=object)
        dtype = next((d for k, d in _EMPTY_DTYPES.items() if isinstance(col.type, k)), None)
        if dtype == "datetime64[ns, UTC]":
            out[col.name] = pd.to_datetime(values, utc=True).astype(dtype)
        elif dtype:
            out[col.name] = values.astype(dtype)
        else:
            out[col.name] = values.astype(object).where(values.notna(), None)
    return out


def empty_staged_frame(table: str) -> pd.DataFrame:
    """A staged frame with no rows but the right columns and dtypes."""
    return coerce_staged(table, pd.DataFrame())
