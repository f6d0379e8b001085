"""The outbox and the audit log: what is to be disclosed, to whom, and the record that it was.

A delivery (one flag, one recipient, one channel) is queued once, whatever re-runs happen: its
id is a hash of those three, and a second enqueue of the same id changes nothing. The message
stays encrypted in the outbox until a transport sends it. Every disclosure is appended to the
audit log's hash chain (`sharing.audit`) under a lock, so concurrent writers cannot fork it; a
queued delivery and its audit entry are written in one transaction (`enqueue_with_audit`), so no
alert is ever queued unaudited.
"""
from __future__ import annotations

import json
from datetime import datetime

import pandas as pd
from sqlalchemy import select, text, update

from connectors.store import Store, to_utc
from schemas.tables import audit_log, outbox
from sharing import audit
from sharing.crypto import encrypt_json

_REQUIRED = ("delivery_id", "flag_id", "recipient_kind", "recipient_id", "channel")
_OPTIONAL = ("recipient_address", "fields")
_ENTRY_FIELDS = ("at", "actor", "action", "recipient", "child_key", "fields", "purpose", "lawful_basis", "ref")
_ERROR_LIMIT = 4000


def enqueue(store: Store, deliveries: pd.DataFrame, *, payloads: dict[str, dict], identity_key: bytes,
            at: datetime) -> int:
    """Queue deliveries (status `pending`), each delivery_id at most once; returns how many are new.

    `deliveries` carries delivery_id, flag_id, recipient_kind, recipient_id, channel and
    optionally recipient_address and fields (the disclosed field names, a list or JSON text;
    when absent, the payload's keys). `payloads[delivery_id]` is the message, stored encrypted.
    """
    if deliveries.empty:
        return 0
    missing = [c for c in _REQUIRED if c not in deliveries.columns]
    if missing:
        raise ValueError(f"deliveries lack the columns {missing}")
    frame = deliveries[[c for c in (*_REQUIRED, *_OPTIONAL) if c in deliveries.columns]].copy()
    frame = frame.drop_duplicates(subset="delivery_id", keep="first")
    unpaid = [d for d in frame["delivery_id"] if d not in payloads]
    if unpaid:
        raise ValueError(f"no payload for deliveries {unpaid}")
    if "fields" not in frame.columns:
        frame["fields"] = [sorted(payloads[d]) for d in frame["delivery_id"]]
    frame["fields"] = [f if isinstance(f, str) else json.dumps(list(f)) for f in frame["fields"]]
    frame["payload_enc"] = [encrypt_json(identity_key, payloads[d]) for d in frame["delivery_id"]]
    frame["status"] = "pending"
    frame["attempts"] = 0
    frame["created_at"] = to_utc(at)
    return store.insert(outbox, frame, ignore_conflicts=True)


QUEUED = "alert_queued"
_IN_CHUNK = 500  # ids per IN (...) list, well under SQLite's bound-parameter limit


def enqueue_with_audit(store: Store, deliveries: pd.DataFrame, *, payloads: dict[str, dict],
                       entries: dict[str, dict], identity_key: bytes, at: datetime) -> int:
    """Queue deliveries and append their `alert_queued` audit entries in one transaction.

    Either every new outbox row and its audit entry are stored, or none of them (a process killed
    in between leaves nothing queued unaudited). `entries[delivery_id]` is the audit entry of that
    delivery (its `ref` is the delivery id). Re-running adds nothing twice: a delivery already
    queued is not queued again, and one already audited is not audited again. A delivery queued
    without its entry by an older Tether gets its entry now, naming the fields it was queued with.
    Concurrent callers serialise on the audit log's lock. Returns how many deliveries are new.
    """
    if deliveries.empty:
        return 0
    ids = list(dict.fromkeys(deliveries["delivery_id"]))
    unentered = [d for d in ids if d not in entries]
    if unentered:
        raise ValueError(f"no audit entry for deliveries {unentered}")
    with store.begin() as conn:
        _lock_audit(store, conn)
        queued = _queued_fields(conn, ids)
        audited = _audited(conn, ids)
        fresh = deliveries[~deliveries["delivery_id"].isin(queued)]
        written = enqueue(store, fresh, payloads=payloads, identity_key=identity_key, at=at)
        owed = [{**entries[d], "ref": d, **({"fields": queued[d]} if d in queued else {})}
                for d in ids if d not in audited]
        append_audit(store, owed)
    return written


def _queued_fields(conn, ids: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for start in range(0, len(ids), _IN_CHUNK):
        stmt = select(outbox.c.delivery_id, outbox.c.fields).where(
            outbox.c.delivery_id.in_(ids[start:start + _IN_CHUNK]))
        found.update({row.delivery_id: row.fields for row in conn.execute(stmt)})
    return found


def _audited(conn, ids: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(ids), _IN_CHUNK):
        stmt = select(audit_log.c.ref).where(audit_log.c.action == QUEUED,
                                             audit_log.c.ref.in_(ids[start:start + _IN_CHUNK]))
        found.update(row.ref for row in conn.execute(stmt))
    return found


def _lock_audit(store: Store, conn) -> None:
    """The audit log's lock (SQLite: the `BEGIN IMMEDIATE` the transaction already holds)."""
    if store.dialect == "postgresql":
        conn.execute(text("LOCK TABLE audit_log IN EXCLUSIVE MODE"))


def queued_and_audited(store: Store) -> set[str]:
    """Delivery ids in the outbox that also have their `alert_queued` audit entry: nothing more to do."""
    queued = set(store.read(outbox, columns=["delivery_id"])["delivery_id"])
    return queued & set(store.read(audit_log, audit_log.c.action == QUEUED, columns=["ref"])["ref"])


def unaudited_deliveries(store: Store) -> list[str]:
    """Delivery ids in the outbox with no `alert_queued` audit entry (none, once all is well)."""
    queued = set(store.read(outbox, columns=["delivery_id"])["delivery_id"])
    return sorted(queued - queued_and_audited(store))


def pending_deliveries(store: Store, statuses: tuple[str, ...] = ("pending", "failed")) -> pd.DataFrame:
    """Deliveries not yet made — queued, or failed and due a retry — oldest first."""
    frame = store.read(outbox, outbox.c.status.in_(statuses))
    return frame.sort_values(["created_at", "delivery_id"], kind="stable").reset_index(drop=True)


def mark_delivered(store: Store, delivery_id: str, at: datetime) -> bool:
    """Record a successful send; False if it was already marked delivered."""
    return _settle(store, delivery_id, status="delivered", delivered_at=to_utc(at), last_error=None)


def mark_failed(store: Store, delivery_id: str, error: str, at: datetime) -> bool:
    """Record a failed attempt (retried later); `error` must already be scrubbed of identity.

    `at` is accepted for symmetry with `mark_delivered`; the outbox keeps no last-attempt time.
    """
    return _settle(store, delivery_id, status="failed", last_error=str(error)[:_ERROR_LIMIT])


def _settle(store: Store, delivery_id: str, **values) -> bool:
    with store.begin() as conn:
        stmt = (update(outbox)
                .where(outbox.c.delivery_id == delivery_id, outbox.c.status != "delivered")
                .values(attempts=outbox.c.attempts + 1, **values))
        if conn.execute(stmt).rowcount:
            return True
        exists = conn.execute(select(outbox.c.delivery_id).where(outbox.c.delivery_id == delivery_id)).first()
        if exists is None:
            raise LookupError(f"no delivery with id {delivery_id} in the outbox")
        return False


def append_audit(store: Store, entries: list[dict]) -> list[dict]:
    """Append entries to the audit chain after its current head; returns them as stored.

    Each entry has at, actor, action, purpose, lawful_basis, fields (list or JSON text) and
    optionally recipient, child_key, ref. Runs in one transaction holding the log's lock
    (PostgreSQL `LOCK TABLE ... IN EXCLUSIVE MODE`; SQLite `BEGIN IMMEDIATE`).
    """
    if not entries:
        return []
    rows = [_audit_row(entry) for entry in entries]
    with store.begin() as conn:
        _lock_audit(store, conn)
        head = conn.execute(select(audit_log.c.seq, audit_log.c.hash)
                            .order_by(audit_log.c.seq.desc()).limit(1)).first()
        prev_hash, start_seq = (head.hash, head.seq + 1) if head else (audit.GENESIS, 1)
        chained = audit.chain(rows, prev_hash=prev_hash, start_seq=start_seq)
        store.insert(audit_log, chained)
    return chained


def read_audit(store: Store, since_seq: int | None = None) -> list[dict]:
    """The audit log in sequence order, as plain dicts that `sharing.audit.verify` accepts."""
    where = None if since_seq is None else audit_log.c.seq >= since_seq
    return store.records(audit_log, where, order_by=[audit_log.c.seq])


def _audit_row(entry: dict) -> dict:
    unknown = set(entry) - set(_ENTRY_FIELDS)
    if unknown:
        raise ValueError(f"audit entry has fields the log does not keep: {sorted(unknown)}")
    row = {name: entry.get(name) for name in _ENTRY_FIELDS}
    row["at"] = to_utc(row["at"])
    if row["at"] is None:
        raise ValueError("audit entry needs 'at'")
    if not isinstance(row["fields"], str):
        row["fields"] = json.dumps(list(row["fields"] or []))
    return row
