"""The store records the keys it was built with on first use and refuses any other key after."""
from __future__ import annotations

import datetime as dt
import threading

import pandas as pd
import pytest
from sqlalchemy import update

from connectors.store import Store
from connectors.store_keys import WrongKeyError, check_keys, current_key_ids, store_label
from schemas import tables as t
from schemas.errors import TetherError
from sharing.keys import KeyRing, key_id

TOKEN, IDENTITY, OTHER = bytes(range(32)), bytes(range(32, 64)), bytes(range(64, 96))
AT = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.timezone.utc)
ENV = {"TETHER_TOKEN_KEY_FILE": "/srv/tether/keys/token.hex", "TETHER_IDENTITY_KEY_FILE": "/srv/tether/keys/id.hex"}


def _rows(store: Store) -> list[dict]:
    return store.records(t.store_keys)


def test_the_first_use_records_both_key_ids_and_later_uses_write_nothing(store):
    keys = KeyRing(TOKEN, IDENTITY)
    assert check_keys(store, keys, ENV, at=AT) == {"token": key_id(TOKEN), "identity": key_id(IDENTITY)}
    first = _rows(store)
    assert {(r["purpose"], r["key_id"], r["state"]) for r in first} == {
        ("token", key_id(TOKEN), "current"), ("identity", key_id(IDENTITY), "current")}
    assert {r["first_used_at"] for r in first} == {AT}
    check_keys(store, keys, ENV, at=AT + dt.timedelta(days=1))
    assert _rows(store) == first


def test_a_different_token_key_is_refused_with_one_line_naming_both_ids_and_the_key_file(store):
    check_keys(store, KeyRing(TOKEN, IDENTITY), ENV, at=AT)
    before = _rows(store)
    with pytest.raises(WrongKeyError) as refused:
        check_keys(store, KeyRing(OTHER, IDENTITY), ENV, at=AT)
    message = str(refused.value)
    assert isinstance(refused.value, TetherError) and "\n" not in message
    assert message == (
        f"the store at {store_label(store)} was built with token key {key_id(TOKEN)}, not {key_id(OTHER)} "
        f"(TETHER_TOKEN_KEY_FILE=/srv/tether/keys/token.hex): use the key the store was built with; "
        f"rotating keys is `tether keys rotate` (not yet available)")
    assert _rows(store) == before


def test_a_different_identity_key_is_refused(store):
    check_keys(store, KeyRing(TOKEN, IDENTITY), ENV, at=AT)
    with pytest.raises(WrongKeyError, match=f"built with identity key {key_id(IDENTITY)}, not {key_id(OTHER)} "
                                            r"\(TETHER_IDENTITY_KEY_FILE=/srv/tether/keys/id.hex\)"):
        check_keys(store, KeyRing(TOKEN, OTHER), ENV, at=AT)
    with pytest.raises(WrongKeyError, match="TETHER_IDENTITY_KEY in the environment"):
        check_keys(store, KeyRing(TOKEN, OTHER), {"TETHER_IDENTITY_KEY": OTHER.hex()}, at=AT)


def test_a_retired_key_may_not_write_either(store):
    """Room for rotation: a purpose keeps its retired key ids, and only the current one writes."""
    check_keys(store, KeyRing(TOKEN, IDENTITY), ENV, at=AT)
    with store.begin() as conn:
        conn.execute(update(t.store_keys).where(t.store_keys.c.purpose == "identity")
                     .values(state="retired", retired_at=AT))
    store.insert(t.store_keys, [{"purpose": "identity", "key_id": key_id(OTHER), "state": "current",
                                 "first_used_at": AT}])
    assert current_key_ids(store)["identity"] == key_id(OTHER)
    check_keys(store, KeyRing(TOKEN, OTHER), ENV, at=AT)
    with pytest.raises(WrongKeyError, match=f"identity key {key_id(OTHER)}, not {key_id(IDENTITY)}"):
        check_keys(store, KeyRing(TOKEN, IDENTITY), ENV, at=AT)


def test_a_store_filled_before_key_ids_were_recorded_refuses_an_identity_key_its_data_was_not_encrypted_with(store):
    store.insert(t.staged_sc_persons, pd.DataFrame([{
        "person_ref": "p1", "source_id": "social_care", "file_id": "f" * 64, "row_number": 1,
        "identity_enc": b"T1...", "key_id": key_id(IDENTITY), "restricted": False}]))
    with pytest.raises(WrongKeyError, match=f"holds identity encrypted with identity key {key_id(IDENTITY)}, "
                                            f"not {key_id(OTHER)}"):
        check_keys(store, KeyRing(TOKEN, OTHER), ENV, at=AT)
    assert _rows(store) == []
    assert check_keys(store, KeyRing(TOKEN, IDENTITY), ENV, at=AT)["identity"] == key_id(IDENTITY)


def test_the_store_is_named_without_its_password():
    store = Store("postgresql+psycopg2://tether:s3cret-pw@db.la.example:5432/tether")
    try:
        assert "s3cret-pw" not in store_label(store) and "db.la.example:5432/tether" in store_label(store)
    finally:
        store.dispose()


def test_two_first_runs_at_once_with_different_keys_bind_one_and_refuse_the_other(store):
    barrier, outcomes = threading.Barrier(2), []

    def first_run(token: bytes):
        barrier.wait()
        try:
            outcomes.append(check_keys(store, KeyRing(token, IDENTITY), ENV, at=AT)["token"])
        except WrongKeyError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=first_run, args=(k,)) for k in (TOKEN, OTHER)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    bound = [o for o in outcomes if isinstance(o, str)]
    assert len(bound) == 1 and sum(isinstance(o, WrongKeyError) for o in outcomes) == 1
    assert current_key_ids(store)["token"] == bound[0]
    assert len(_rows(store)) == 2
