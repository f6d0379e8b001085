"""Validation problems of a configuration file as one line each: file, key path, what is allowed.

`sources.toml: sources.kent.transport: 'ftp' is not allowed; expected one of folder, sftp, odbc`
"""
from __future__ import annotations

import difflib
import re
from typing import Any

from pydantic import ValidationError

from schemas.config_models import TRANSPORTS

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_SECRET = re.compile(r"passphrase|password|secret", re.IGNORECASE)

_KIND = {
    "int_parsing": "is not a whole number", "int_type": "is not a whole number",
    "int_from_float": "is not a whole number", "float_parsing": "is not a number", "float_type": "is not a number",
    "string_type": "is not text; write it in quotes", "bool_type": "is not true or false",
    "bool_parsing": "is not true or false", "list_type": "is not a list; write [ ... ]",
    "dict_type": "is not a table", "model_type": "is not a table", "model_attributes_type": "is not a table",
}


def key_path(loc: tuple[Any, ...]) -> str:
    """A pydantic location as a TOML key path: `sources.kent.files[0].layout`, `codes."/".category`."""
    parts: list[str] = []
    for item in loc:
        if item == "[key]":
            continue
        if isinstance(item, int):
            if parts:
                parts[-1] += f"[{item}]"
            else:
                parts.append(f"[{item}]")
        else:
            text = str(item)
            parts.append(text if _BARE_KEY.match(text) else '"' + text.replace('"', '\\"') + '"')
    return ".".join(parts)


def _without_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """pydantic puts the transport tag of a source in its location (sources.kent.sftp.host): drop it."""
    if len(loc) > 2 and loc[0] == "sources" and loc[2] in TRANSPORTS:
        return loc[:2] + loc[3:]
    return loc


def _choices(expected: str) -> str:
    found = re.findall(r"'([^']*)'", expected)
    return ", ".join(found) if found else expected


def _shown(value: Any, loc: tuple[Any, ...]) -> str:
    if any(isinstance(p, str) and _SECRET.search(p) for p in loc):
        return "(the value given)"
    return repr(value)


def describe(error: dict, origin: str) -> str:
    """One pydantic error as one line, starting with the file it is in."""
    kind, ctx = error["type"], error.get("ctx") or {}
    loc = _without_tags(tuple(error["loc"]))
    value = error.get("input")
    if "key" in ctx and kind != "union_tag_invalid":
        loc = loc + tuple(str(ctx["key"]).split(".")) if kind != "unknown_key" else loc + (ctx["key"],)
    path = key_path(loc)
    where = f"{origin}: {path}" if path else origin
    if kind == "unknown_key":
        allowed = ctx.get("allowed", [])
        close = difflib.get_close_matches(str(ctx["key"]), allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"{where}: unknown key{hint}; allowed keys are {', '.join(allowed)}"
    if kind == "union_tag_invalid":
        return (f"{where}.transport: {ctx.get('tag')!r} is not allowed; expected one of "
                f"{_choices(str(ctx.get('expected_tags', '')))}")
    if kind == "literal_error":
        return f"{where}: {_shown(value, loc)} is not allowed; expected one of {_choices(str(ctx.get('expected', '')))}"
    if kind == "missing":
        return f"{where}: required key is missing"
    if kind == "too_short":
        return f"{where}: needs at least {ctx.get('min_length', 1)} entry; none given"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = {"greater_than_equal": f"at least {ctx.get('ge')}", "greater_than": f"more than {ctx.get('gt')}",
                 "less_than_equal": f"at most {ctx.get('le')}", "less_than": f"less than {ctx.get('lt')}"}[kind]
        return f"{where}: {_shown(value, loc)} is out of range; it must be {bound}"
    if kind in _KIND:
        return f"{where}: {_shown(value, loc)} {_KIND[kind]}"
    message = error["msg"]
    if kind == "value_error":
        message = str(ctx.get("error", message))
    return f"{where}: {' '.join(str(message).split())}"


def problems(exc: ValidationError, origin: str) -> list[str]:
    """Every problem of a failed validation, one line each (duplicates removed, in order)."""
    lines = [describe(e, origin) for e in exc.errors()]
    return list(dict.fromkeys(lines))
