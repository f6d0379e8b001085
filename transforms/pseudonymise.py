"""Replace identity by keyed tokens and encrypted identity (DESIGN.md, "The data's way").

After this step no plaintext identity remains in a frame: record ids become `*_ref` tokens, valid
UPNs and NHS numbers become `upn_token` / `nhs_token`, legal forename + surname + date of birth
become `name_dob_token`, and every identity field present is encrypted together into
`identity_enc` (key id in `key_id`). An identifier that fails its format check is not tokenised:
it stays out of linkage (`*_valid` False), is kept only inside `identity_enc`, and is reported as a
data-quality issue naming the row and field, never the value.
"""
from __future__ import annotations

import datetime as dt

import pandas as pd

from schemas.feeds import IDENTITY
from sharing.crypto import encrypt_json
from sharing.keys import KeyRing
from sharing.tokens import identifier_token, name_dob_token, token
from transforms.identifiers import nhs_number_problem, upn_problem
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


def identity_columns(frame: pd.DataFrame, keys: KeyRing) -> tuple[pd.DataFrame, list[DataQualityIssue]]:
    """Token and encrypted-identity columns for each row of a canonical frame (same index).

    Columns: upn_token, upn_valid, former_upn_token, nhs_token, nhs_valid, name_dob_token,
    identity_enc, key_id. `*_valid` is None when the identifier is absent.
    """
    issues: list[DataQualityIssue] = []
    rows = []
    fields = [f for f in frame.columns if f in IDENTITY]
    for idx, row in frame.iterrows():
        row_number = int(row["row_number"])
        out: dict[str, object] = {"upn_token": None, "upn_valid": None, "former_upn_token": None,
                                  "nhs_token": None, "nhs_valid": None}
        for fname, token_col, valid_col, ns, check in (
            ("upn", "upn_token", "upn_valid", "upn", upn_problem),
            ("former_upn", "former_upn_token", None, "upn", upn_problem),
            ("nhs_number", "nhs_token", "nhs_valid", "nhs", nhs_number_problem),
        ):
            value = row.get(fname)
            if not _present(value):
                continue
            problem = check(value)
            if valid_col:
                out[valid_col] = problem is None
            if problem is None:
                out[token_col] = identifier_token(keys.token_key, ns, value)
            else:
                issues.append(DataQualityIssue(row_number, fname, f"{problem}; kept out of linkage"))
        dob = row.get("dob")
        out["name_dob_token"] = name_dob_token(keys.token_key, row.get("forename"), row.get("surname"),
                                               dob if _present(dob) else None)
        identity = {f: _identity_value(row[f]) for f in fields if _present(row[f])}
        out["identity_enc"] = encrypt_json(keys.identity_key, identity) if identity else None
        out["key_id"] = keys.identity_key_id if identity else None
        rows.append(out)
    columns = ["upn_token", "upn_valid", "former_upn_token", "nhs_token", "nhs_valid", "name_dob_token",
               "identity_enc", "key_id"]
    return pd.DataFrame(rows, index=frame.index, columns=columns, dtype=object), issues


def without_identity(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with every plaintext identity column removed."""
    return frame.drop(columns=[c for c in frame.columns if c in IDENTITY])
