"""Replace identity by keyed tokens and encrypted identity (docs/architecture.md#the-datas-way).

After this step no plaintext identity remains in a frame: record ids become `*_ref` tokens, valid
UPNs and NHS numbers become `upn_token` / `nhs_token`, legal forename + surname + date of birth
become `name_dob_token`, and every identity field present is encrypted together into
`identity_enc` (key id in `key_id`). An identifier that fails its format check is not tokenised:
it stays out of linkage (`*_valid` False), is kept only inside `identity_enc`, and is reported as a
data-quality issue naming the row and field, never the value. A date of birth that cannot belong to
the child, or a placeholder forename or surname (transforms/quality.py), is reported the same way
and gives no `name_dob_token`.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

import pandas as pd

from schemas.feeds import IDENTITY
from sharing.crypto import encrypt_json
from sharing.keys import KeyRing
from sharing.tokens import identifier_token, name_dob_token, token
from transforms.identifiers import nhs_number_problem, upn_problem
from transforms.quality import (
    LINKAGE_NAME_FIELDS, NAME_FIELDS, QualityRules, builtin_rules, dob_problem, placeholder_problem, single_line,
    text_problems,
)
from transforms.read import DataQualityIssue

# Token namespaces of record ids: the same id in two namespaces never gives the same token.
PUPIL_NS = "pupil"
SC_PERSON_NS = "sc_person"
CAMHS_PATIENT_NS = "camhs_patient"


def pupil_ref(token_key: bytes, laestab: str, school_pupil_id: str | None) -> str | None:
    """A school's pupil: the school pupil id is only unique within its school (LAESTAB)."""
    if school_pupil_id is None:
        return None
    return token(token_key, PUPIL_NS, f"{laestab}:{school_pupil_id}")


def record_ref(token_key: bytes, namespace: str, record_id: str | None) -> str | None:
    return token(token_key, namespace, record_id)


def _present(value: object) -> bool:
    return value is not None and not (isinstance(value, float) and value != value) and value is not pd.NaT


def _identity_value(value: object) -> object:
    return value.isoformat() if isinstance(value, dt.date) else value


def per_value(fn: Callable[[object], object], values: Iterable, cache: dict | None = None) -> list:
    """`[fn(v) for v in values]`, computing `fn` once per distinct value (`fn` must be pure).

    A file repeats the same pupil, date and identity on many rows; a keyed token costs an HMAC.
    Values (and the items of a tuple) are told apart by type as well as value: 1, 1.0 and True
    are different values here. Calls sharing a `cache` must pass the same `fn`.
    """
    cache = {} if cache is None else cache
    out = []
    for value in values:
        key = (tuple(map(type, value)) if type(value) is tuple else type(value), value)
        try:
            hit = key in cache
        except TypeError:       # unhashable: not cached
            out.append(fn(value))
            continue
        out.append(cache[key] if hit else cache.setdefault(key, fn(value)))
    return out


_IDENTIFIER_CHECKS = (
    ("upn", "upn_token", "upn_valid", "upn", upn_problem),
    ("former_upn", "former_upn_token", None, "upn", upn_problem),
    ("nhs_number", "nhs_token", "nhs_valid", "nhs", nhs_number_problem),
)
_IDENTITY_OUT = ["upn_token", "upn_valid", "former_upn_token", "nhs_token", "nhs_valid", "name_dob_token",
                 "identity_enc", "key_id"]


def identity_columns(frame: pd.DataFrame, keys: KeyRing, *, on: dt.date | None = None,
                     rules: QualityRules | None = None) -> tuple[pd.DataFrame, list[DataQualityIssue]]:
    """Token and encrypted-identity columns for each row of a canonical frame (same index).

    Columns: upn_token, upn_valid, former_upn_token, nhs_token, nhs_valid, name_dob_token,
    identity_enc, key_id. `*_valid` is None when the identifier is absent. `on` is the record's
    date (the file's extract date), against which a date of birth is judged with the frame's
    `year_group` when it has one; with no date the age rules are not applied. `rules` default to
    the built-in data_quality.toml. Issues come out in row order.
    """
    n = len(frame)
    fields = [f for f in frame.columns if f in IDENTITY]
    column = {f: frame[f].tolist() for f in frame.columns if f in IDENTITY}
    absent = [None] * n
    row_numbers = [int(v) for v in frame["row_number"].tolist()] if n else []
    out: dict[str, list] = {c: [None] * n for c in _IDENTITY_OUT}
    found: list[list[DataQualityIssue]] = [[] for _ in range(n)]

    def checked(check, ns):
        def one(value):
            problem = check(value)
            return problem, identifier_token(keys.token_key, ns, value) if problem is None else None
        return one

    for fname, token_col, valid_col, ns, check in _IDENTIFIER_CHECKS:
        values = column.get(fname, absent)
        results = per_value(checked(check, ns), (v if _present(v) else None for v in values))
        for i, (value, (problem, tok)) in enumerate(zip(values, results)):
            if not _present(value):
                continue
            if valid_col:
                out[valid_col][i] = problem is None
            if problem is None:
                out[token_col][i] = tok
            else:
                found[i].append(DataQualityIssue(row_numbers[i], fname, f"{problem}; kept out of linkage"))
    rules = builtin_rules() if rules is None else rules
    dobs = [v if _present(v) else None for v in column.get("dob", absent)]
    unlinkable = _unlinkable(frame, column, dobs, found, row_numbers, on, rules)
    out["name_dob_token"] = per_value(lambda fsd: name_dob_token(keys.token_key, *fsd),
                                      zip(column.get("forename", absent), column.get("surname", absent), dobs))
    out["name_dob_token"] = [None if bad else tok for bad, tok in zip(unlinkable, out["name_dob_token"])]
    key_id = keys.identity_key_id
    for i, row in enumerate(zip(*(column[f] for f in fields))):
        identity = {f: _identity_value(single_line(v) if f in NAME_FIELDS else v)
                    for f, v in zip(fields, row) if _present(v)}
        if identity:
            out["identity_enc"][i] = encrypt_json(keys.identity_key, identity)
            out["key_id"][i] = key_id
    issues = [issue for row in found for issue in row]
    return pd.DataFrame(out, index=frame.index, columns=_IDENTITY_OUT, dtype=object), issues


def _unlinkable(frame: pd.DataFrame, column: dict[str, list], dobs: list, found: list[list[DataQualityIssue]],
                row_numbers: list[int], on: dt.date | None, rules: QualityRules) -> list[bool]:
    """Per row: True when its date of birth or a linkage name is not fit for name-based linkage.
    Appends each row's data-quality findings (those and formula values, line breaks) to `found`."""
    n = len(frame)
    absent = [None] * n
    year_groups = frame["year_group"].tolist() if "year_group" in frame.columns else absent
    texts = {f: frame[f].tolist() for f in (*NAME_FIELDS, "reg_group") if f in frame.columns}
    dob_cache: dict = {}
    out = [False] * n
    for i in range(n):
        dob, year_group = dobs[i], year_groups[i] if _present(year_groups[i]) else None
        key = (dob, year_group)
        if key not in dob_cache:
            dob_cache[key] = dob_problem(dob, year_group, on, rules)
        problems = [("dob", dob_cache[key])] if dob_cache[key] else []
        problems += [(f, p) for f in LINKAGE_NAME_FIELDS
                     if (p := placeholder_problem(f, column.get(f, absent)[i], rules))]
        out[i] = bool(problems)
        problems += text_problems({f: values[i] for f, values in texts.items()})
        found[i].extend(DataQualityIssue(row_numbers[i], f, p) for f, p in problems)
    return out


def without_identity(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with every plaintext identity column removed."""
    return frame.drop(columns=[c for c in frame.columns if c in IDENTITY])
