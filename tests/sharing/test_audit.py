"""The audit hash chain: intact logs verify; edits, deletions and reorderings are found."""
import datetime as dt
import json

import pytest

from schemas.calendar import LONDON
from sharing.audit import GENESIS, chain, entry_hash, verify


def entries(n=4):
    return [{"at": dt.datetime(2026, 11, 9, 9, 15 + i, tzinfo=LONDON), "actor": "tether",
             "action": "alert_queued", "recipient": f"w{i}@la.example", "child_key": f"c{i}",
             "fields": ["child_name", "school", "session"], "purpose": "safeguarding",
             "lawful_basis": "UK GDPR 6(1)(e)", "ref": f"d{i}"} for i in range(n)]


def test_chain_numbers_and_links_entries():
    log = chain(entries())
    assert [e["seq"] for e in log] == [1, 2, 3, 4]
    assert log[0]["prev_hash"] == GENESIS
    assert all(log[i]["prev_hash"] == log[i - 1]["hash"] for i in range(1, 4))
    assert log[0]["hash"] == entry_hash(GENESIS, log[0])
    assert verify(log) == []


def test_chain_continues_from_a_head():
    first = chain(entries(2))
    more = chain(entries(2), prev_hash=first[-1]["hash"], start_seq=3)
    assert verify(first + more) == []
    assert verify(more, prev_hash=first[-1]["hash"], start_seq=3) == []


def test_round_trip_through_the_store_still_verifies():
    # what SQLite gives back: naive UTC datetimes and the fields list as JSON text
    stored = []
    for e in chain(entries()):
        stored.append({**e, "at": e["at"].astimezone(dt.timezone.utc).replace(tzinfo=None),
                       "fields": json.dumps(e["fields"])})
    assert verify(stored) == []


def test_edited_entry_is_detected():
    log = chain(entries())
    log[1] = {**log[1], "recipient": "someone.else@example.com"}
    problems = verify(log)
    assert len(problems) == 1 and "seq 2" in problems[0] and "altered" in problems[0]
    assert "someone.else" not in problems[0]


def test_edit_with_recomputed_hash_breaks_the_next_link():
    log = chain(entries())
    log[1] = {**log[1], "purpose": "curiosity"}
    log[1]["hash"] = entry_hash(log[1]["prev_hash"], log[1])
    problems = verify(log)
    assert problems == ["entry seq 3: broken link, prev_hash does not match the hash of the entry before"]


def test_deleted_entry_is_detected():
    log = chain(entries())
    del log[2]
    problems = verify(log)
    assert any("sequence 4, expected 3" in p for p in problems)
    assert any("seq 4: broken link" in p for p in problems)


def test_deleted_first_entry_is_detected():
    problems = verify(chain(entries())[1:])
    assert any("sequence 2, expected 1" in p for p in problems)


def test_deleted_last_entry_is_detected_against_the_head():
    log = chain(entries())
    assert verify(log[:-1]) == []
    assert verify(log[:-1], expected_head=log[-1]["hash"]) != []
    assert verify(log, expected_head=log[-1]["hash"]) == []


def test_reordered_pair_is_detected():
    log = chain(entries())
    log[1], log[2] = log[2], log[1]
    problems = verify(log)
    assert any("sequence 3, expected 2" in p for p in problems)
    assert any("broken link" in p for p in problems)


def test_hash_depends_on_every_field():
    base = chain(entries(1))[0]
    for name, value in [("seq", 2), ("at", dt.datetime(2026, 11, 9, 9, 16, tzinfo=LONDON)), ("actor", "x"),
                        ("action", "record_viewed"), ("recipient", "x"), ("child_key", "x"), ("fields", ["x"]),
                        ("purpose", "x"), ("lawful_basis", "x"), ("ref", "x")]:
        assert entry_hash(GENESIS, {**base, name: value}) != base["hash"], name


def test_bad_timestamp_type_is_refused():
    with pytest.raises(TypeError):
        entry_hash(GENESIS, {"seq": 1, "at": 12345})


def test_frame_round_trip_with_missing_values_still_verifies():
    import pandas as pd
    log = chain([{**e, "recipient": None, "ref": None} for e in entries()])
    frame = pd.DataFrame(log)
    frame["ref"] = float("nan")
    assert verify(frame.to_dict("records")) == []
