"""Keyed pseudonymisation tokens: HMAC-SHA256 over a namespaced, normalised value.

The same value in the same namespace gives the same token under one key, so records link on
tokens without anyone holding the identifier. Namespaces keep a UPN token from ever equalling an
NHS number token.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import unicodedata

_NON_ALNUM = re.compile(r"[^A-Z0-9]")
_NON_ALPHA = re.compile(r"[^A-Z]")


def token(key: bytes, namespace: str, value: str | None) -> str | None:
    """Hex HMAC of `namespace:value`; None for a missing value."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    value = str(value)
    if not value.strip():
        return None
    return hmac.new(key, f"{namespace}:{value}".encode("utf-8"), hashlib.sha256).hexdigest()


def normalise_identifier(value: str | None) -> str | None:
    if value is None:
        return None
    out = _NON_ALNUM.sub("", str(value).upper())
    return out or None


def normalise_name(value: str | None) -> str | None:
    """Upper case, accents folded, only letters kept ("O'Brien-Smith" -> "OBRIENSMITH")."""
    if value is None:
        return None
    folded = unicodedata.normalize("NFKD", str(value)).encode("ascii", "ignore").decode()
    out = _NON_ALPHA.sub("", folded.upper())
    return out or None


def identifier_token(key: bytes, namespace: str, value: str | None) -> str | None:
    return token(key, namespace, normalise_identifier(value))


def name_dob_token(key: bytes, forename: str | None, surname: str | None, dob: dt.date | None) -> str | None:
    """The exact forename + surname + date-of-birth key; None unless all three are present."""
    f, s = normalise_name(forename), normalise_name(surname)
    if not f or not s or dob is None or dob != dob:
        return None
    return token(key, "name_dob", f"{f}|{s}|{dob.isoformat()}")
