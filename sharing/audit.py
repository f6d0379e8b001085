"""The tamper-evident disclosure log: a hash chain over audit entries (pure; the store writes it).

Every disclosure — alert queued or sent, record viewed, extract produced — is an entry: when,
who (actor), what (action, fields), to whom (recipient), about which child (child_key), why
(purpose, lawful basis) and a reference (e.g. the delivery id). Each entry's hash covers the
previous entry's hash and the entry's own fields, so editing, deleting or reordering entries
breaks the chain and `verify` says where (by sequence number, never by content).

Canonical form, so that a round trip through the store verifies:
- `at` is normalised to UTC, microsecond precision (a naive datetime is taken as UTC — the store
  writes UTC);
- `fields` may be a list or its JSON text: both hash the same;
- keys are sorted; missing fields (None, NaN, NA, NaT) hash as null.
Deleting entries at the end of the chain is only visible against a head hash kept elsewhere:
pass it as `expected_head`.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

GENESIS = "0" * 64
HASHED_FIELDS = ("seq", "at", "actor", "action", "recipient", "child_key", "fields", "purpose",
                 "lawful_basis", "ref")


def _missing(value: Any) -> bool:
    """None, or a float NaN / pandas NA / NaT as a DataFrame read back from the store may hold."""
    if value is None:
        return True
    try:
        return bool(value != value)
    except (TypeError, ValueError):
        return str(value) in ("<NA>", "NaT")


def _utc(value: Any) -> str | None:
    if _missing(value):
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if not isinstance(value, dt.datetime):
        raise TypeError(f"audit entry 'at' must be a datetime or ISO text, not {type(value).__name__}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _fields(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    if isinstance(value, tuple):
        return list(value)
    return value


def canonical(entry: dict) -> str:
    """The canonical JSON text of an entry's hashed fields."""
    body = {name: None if _missing(entry.get(name)) else entry.get(name) for name in HASHED_FIELDS}
    body["seq"] = int(body["seq"]) if body["seq"] is not None else None
    body["at"] = _utc(body["at"])
    body["fields"] = _fields(body["fields"])
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def entry_hash(prev_hash: str, entry: dict) -> str:
    """sha256 over the previous hash and the entry's canonical JSON."""
    return hashlib.sha256((prev_hash + canonical(entry)).encode("utf-8")).hexdigest()


def chain(entries: list[dict], prev_hash: str = GENESIS, start_seq: int = 1) -> list[dict]:
    """New entries numbered from `start_seq` and chained after `prev_hash` (the log's head)."""
    out = []
    for offset, entry in enumerate(entries):
        linked = {**entry, "seq": start_seq + offset, "prev_hash": prev_hash}
        linked["hash"] = entry_hash(prev_hash, linked)
        out.append(linked)
        prev_hash = linked["hash"]
    return out


def verify(entries: list[dict], *, prev_hash: str = GENESIS, start_seq: int = 1,
           expected_head: str | None = None) -> list[str]:
    """Problems found in the log as stored, in stored order (empty list: intact).

    Checks that sequence numbers run on without gaps from `start_seq`, that each entry points to
    the hash of the one before (the first to `prev_hash`), and that each hash matches its entry.
    """
    problems = []
    expected_seq, expected_prev = start_seq, prev_hash
    for position, entry in enumerate(entries, start=1):
        seq = entry.get("seq")
        if seq != expected_seq:
            problems.append(f"entry {position}: sequence {seq}, expected {expected_seq} (gap or reordering)")
        if entry.get("prev_hash") != expected_prev:
            problems.append(f"entry seq {seq}: broken link, prev_hash does not match the hash of the entry before")
        if entry.get("hash") != entry_hash(entry.get("prev_hash") or "", entry):
            problems.append(f"entry seq {seq}: altered entry, its hash does not match its content")
        try:
            expected_seq = int(seq) + 1
        except (TypeError, ValueError):
            expected_seq += 1
        expected_prev = entry.get("hash")
    if expected_head is not None and expected_prev != expected_head:
        problems.append("the last entry is not the recorded head of the log (entries missing at the end)")
    return problems
