"""Validate a staged frame against its canonical pandera model; failing rows go to quarantine.

Validation is lazy (every failure of every row is collected at once) and its failure cases are
scrubbed (sharing.scrub) before they become reasons: pandera echoes failing values, and a staged
column can hold an encrypted blob, a token or a staff member's name.
"""
from __future__ import annotations

from collections import defaultdict

import pandas as pd
import pandera.errors as pa_errors

from schemas.staged import STAGED_SCHEMAS, coerce_staged, passes_quickly
from sharing.scrub import scrub_failure_cases
from transforms.read import QuarantinedRow

__all__ = ["STAGED_SCHEMAS", "validate_staged"]


def _describe(column: object, check: object, value: object) -> str:
    where = f"{column}" if column is not None else "row"
    check_text = str(check) if check is not None else "check"
    if value is None or (isinstance(value, float) and value != value):
        return f"{where} failed {check_text}"
    return f"{where} failed {check_text} (value {value})"


def validate_staged(table: str, df: pd.DataFrame) -> tuple[pd.DataFrame, list[QuarantinedRow]]:
    """(valid rows, one QuarantinedRow per failing row) for a staged frame of `table`.

    The frame is first given the table's columns and dtypes. A failure that belongs to no row (a
    column-level problem) fails every row. Quarantined rows carry no payload here (`raw` is
    b""): the caller holds the raw rows by row number.
    """
    schema = STAGED_SCHEMAS[table]
    if not df.index.is_unique:
        df = df.reset_index(drop=True)
    try:
        frame = coerce_staged(table, df)
    except (TypeError, ValueError) as exc:
        reason = f"staged table {table} could not be given its column types: {type(exc).__name__}"
        return df.iloc[0:0], [QuarantinedRow(_row_number(df, i), None, reason, b"") for i in df.index]
    if passes_quickly(table, frame):    # a clean frame: pandera would return it unchanged
        return frame, []
    try:
        return schema.validate(frame, lazy=True), []
    except pa_errors.SchemaErrors as exc:
        cases = scrub_failure_cases(exc.failure_cases)
    except (pa_errors.SchemaError, TypeError, ValueError) as exc:   # coercion of a whole column
        reason = f"staged table {table} failed validation: {type(exc).__name__}"
        return frame.iloc[0:0], [QuarantinedRow(_row_number(frame, i), None, reason, b"") for i in frame.index]

    by_index: dict[object, list[tuple[str | None, str]]] = defaultdict(list)
    whole: list[tuple[str | None, str]] = []
    for _, case in cases.iterrows():
        column = case.get("column")
        column = None if column is None or (isinstance(column, float) and column != column) else str(column)
        text = _describe(column, case.get("check"), case.get("failure_case"))
        index = case.get("index")
        if index is None or (isinstance(index, float) and index != index):
            whole.append((column, text))
        else:
            by_index[index].append((column, text))
    failing = list(frame.index) if whole else [i for i in frame.index if i in by_index]
    failures = []
    for i in failing:
        problems = (by_index.get(i) or []) + whole
        column, text = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        failures.append(QuarantinedRow(_row_number(frame, i), column,
                                       f"failed validation of {table}: {text}{more}", b""))
    valid = frame.drop(index=failing)
    try:
        valid = schema.validate(valid, lazy=True)
    except pa_errors.SchemaErrors:   # should not happen: every failing row was removed
        failures.extend(QuarantinedRow(_row_number(valid, i), None, f"failed validation of {table}", b"")
                        for i in valid.index)
        valid = valid.iloc[0:0]
    return valid, failures


def _row_number(frame: pd.DataFrame, index: object) -> int | None:
    value = frame.at[index, "row_number"] if "row_number" in frame.columns else None
    return None if value is None or pd.isna(value) else int(value)
