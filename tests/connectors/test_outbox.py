"""The outbox queues each delivery once, encrypted; the audit chain grows without forking."""
from __future__ import annotations

import datetime as dt
import json
import threading

import pandas as pd
import pytest
from sqlalchemy import update

from connectors import outbox as outbox_module
from connectors.outbox import (
    append_audit, enqueue, enqueue_with_audit, mark_delivered, mark_failed, pending_deliveries, read_audit,
    unaudited_deliveries,
)
from schemas.tables import audit_log, outbox
from sharing.audit import GENESIS, verify
from sharing.crypto import decrypt_json

UTC = dt.timezone.utc
KEY = bytes(range(32, 64))
AT = dt.datetime(2026, 9, 3, 9, 15, tzinfo=UTC)


def _deliveries(ids: list[str]) -> pd.DataFrame:
    return pd.DataFrame({
        "delivery_id": ids, "flag_id": "flag-1", "recipient_kind": "allocated_worker",
        "recipient_id": [f"w{i}" for i in range(len(ids))], "recipient_address": "sw@la.example",
        "channel": "email", "child_key": "ck-1",  # extra columns are not the outbox's business
    })


def _payloads(ids):
    return {d: {"rule": "unexplained_absence_today", "child_key": "ck-1", "session": "AM", "to": d} for d in ids}


def test_each_delivery_is_queued_once_with_its_payload_encrypted(store):
    ids = ["d1", "d2"]
    assert enqueue(store, _deliveries(ids), payloads=_payloads(ids), identity_key=KEY, at=AT) == 2
    assert enqueue(store, _deliveries(ids + ["d3"]), payloads=_payloads(ids + ["d3"]), identity_key=KEY,
                   at=AT + dt.timedelta(minutes=1)) == 1
    got = store.read(outbox)
    assert got["delivery_id"].tolist() == ["d1", "d2", "d3"]
    assert set(got["status"]) == {"pending"} and set(got["attempts"]) == {0}
    assert got["created_at"].tolist()[:2] == [pd.Timestamp(AT)] * 2
    assert decrypt_json(KEY, got["payload_enc"].iloc[0]) == _payloads(["d1"])["d1"]
    assert b"unexplained_absence_today" not in got["payload_enc"].iloc[0]
    assert json.loads(got["fields"].iloc[0]) == ["child_key", "rule", "session", "to"]


def test_a_repeated_id_in_one_batch_is_queued_once(store):
    assert enqueue(store, _deliveries(["d1", "d1"]), payloads=_payloads(["d1"]), identity_key=KEY, at=AT) == 1


def test_a_delivery_without_a_payload_is_refused(store):
    with pytest.raises(ValueError, match="no payload"):
        enqueue(store, _deliveries(["d1", "d2"]), payloads=_payloads(["d1"]), identity_key=KEY, at=AT)
    assert store.read(outbox).empty


def test_delivered_deliveries_leave_the_queue_and_failed_ones_stay_for_retry(store):
    enqueue(store, _deliveries(["d1", "d2", "d3"]).assign(fields=[["rule"], '["rule"]', ("rule", "session")]),
            payloads=_payloads(["d1", "d2", "d3"]), identity_key=KEY, at=AT)
    assert mark_delivered(store, "d1", AT + dt.timedelta(seconds=4))
    assert mark_failed(store, "d2", "smtp: 451 try again later", AT)
    pending = pending_deliveries(store)
    assert pending["delivery_id"].tolist() == ["d2", "d3"]
    assert pending.set_index("delivery_id").loc["d2", "attempts"] == 1
    assert pending.set_index("delivery_id").loc["d2", "last_error"] == "smtp: 451 try again later"
    got = store.read(outbox).set_index("delivery_id")
    assert got.loc["d1", "status"] == "delivered"
    assert got.loc["d1", "delivered_at"] == pd.Timestamp("2026-09-03 09:15:04", tz="UTC")
    assert json.loads(got.loc["d3", "fields"]) == ["rule", "session"]
    assert not mark_delivered(store, "d1", AT)       # already delivered: nothing changes
    assert not mark_failed(store, "d1", "late", AT)  # a delivered message never regresses
    assert store.read(outbox).set_index("delivery_id").loc["d1", "attempts"] == 1
    with pytest.raises(LookupError):
        mark_delivered(store, "nope", AT)


def _entry(action: str, ref: str, minute: int) -> dict:
    return {"at": dt.datetime(2026, 9, 3, 10, minute, tzinfo=dt.timezone(dt.timedelta(hours=1))),
            "actor": "tether", "action": action, "recipient": "sw@la.example", "child_key": "ck-1",
            "fields": ["rule", "session"], "purpose": "safeguarding", "lawful_basis": "Children Act 1989 s.47",
            "ref": ref}


def test_the_audit_chain_appended_across_calls_verifies(store):
    first = append_audit(store, [_entry("alert_queued", "d1", 0), _entry("alert_sent", "d1", 1)])
    second = append_audit(store, [_entry("record_viewed", "d1", 5)])
    assert [e["seq"] for e in first + second] == [1, 2, 3]
    assert first[0]["prev_hash"] == GENESIS and second[0]["prev_hash"] == first[1]["hash"]
    stored = read_audit(store)
    assert [e["hash"] for e in stored] == [e["hash"] for e in first + second]
    assert stored[0]["at"] == dt.datetime(2026, 9, 3, 9, 0, tzinfo=UTC)
    assert verify(stored) == []
    assert verify(store.read(audit_log).to_dict("records")) == []
    # and the check is real: an edited entry no longer verifies
    with store.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.seq == 2).values(purpose="curiosity"))
    assert verify(read_audit(store)) == ["entry seq 2: altered entry, its hash does not match its content"]


def test_concurrent_appends_do_not_fork_the_chain(store):
    errors = []

    def work(worker: int):
        try:
            for i in range(4):
                append_audit(store, [_entry("alert_sent", f"w{worker}-{i}", i)])
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    stored = read_audit(store)
    assert [e["seq"] for e in stored] == list(range(1, 13))
    assert verify(stored) == []


def test_audit_entries_with_fields_the_log_does_not_keep_are_refused(store):
    with pytest.raises(ValueError, match="does not keep"):
        append_audit(store, [{**_entry("extract", "x", 0), "surname": "Smith"}])
    assert read_audit(store) == []


def _entries(ids) -> dict[str, dict]:
    return {d: {**_entry("alert_queued", d, 0), "recipient": f"sw-{d}@la.example"} for d in ids}


def _queue(store, ids):
    return enqueue_with_audit(store, _deliveries(ids), payloads=_payloads(ids), entries=_entries(ids),
                              identity_key=KEY, at=AT)


def test_deliveries_and_their_audit_entries_are_stored_together_and_a_rerun_adds_nothing(store):
    assert _queue(store, ["d1", "d2"]) == 2
    assert _queue(store, ["d1", "d2", "d3"]) == 1
    assert _queue(store, ["d1", "d2", "d3"]) == 0
    assert store.read(outbox)["delivery_id"].tolist() == ["d1", "d2", "d3"]
    audited = read_audit(store)
    assert [(e["action"], e["ref"]) for e in audited] == [("alert_queued", "d1"), ("alert_queued", "d2"),
                                                         ("alert_queued", "d3")]
    assert verify(audited) == [] and unaudited_deliveries(store) == []


def test_when_the_audit_entry_cannot_be_written_the_delivery_is_not_queued_either(store, monkeypatch):
    def audit_fails(*_args, **_kwargs):
        raise RuntimeError("the process died here")
    monkeypatch.setattr(outbox_module, "append_audit", audit_fails)
    with pytest.raises(RuntimeError, match="died"):
        _queue(store, ["d1", "d2"])
    assert store.read(outbox).empty and read_audit(store) == []


def test_a_delivery_without_an_audit_entry_is_refused_before_anything_is_stored(store):
    with pytest.raises(ValueError, match=r"no audit entry for deliveries \['d2'\]"):
        enqueue_with_audit(store, _deliveries(["d1", "d2"]), payloads=_payloads(["d1", "d2"]),
                           entries=_entries(["d1"]), identity_key=KEY, at=AT)
    assert store.read(outbox).empty and read_audit(store) == []


def test_a_delivery_queued_unaudited_by_an_older_tether_is_audited_with_the_fields_it_was_queued_with(store):
    enqueue(store, _deliveries(["d1"]).assign(fields='["rule"]'), payloads=_payloads(["d1"]),
            identity_key=KEY, at=AT)
    assert unaudited_deliveries(store) == ["d1"]
    assert _queue(store, ["d1", "d2"]) == 1
    audited = {e["ref"]: e for e in read_audit(store)}
    assert set(audited) == {"d1", "d2"} and json.loads(audited["d1"]["fields"]) == ["rule"]
    assert unaudited_deliveries(store) == [] and len(store.read(outbox)) == 2
