"""The keys a store was built with: their fingerprints, recorded on first use, checked on every run.

Tokens made under one token key never equal tokens made under another, and identity encrypted
under one identity key cannot be read with another: a run under a different key would silently
duplicate every child or write copies no-one can read. So the store keeps the key id
(`sharing.keys.key_id`, a fingerprint, never the key) of each purpose in `store_keys`, written by
the first run on an empty store (or `tether init`), and every later run compares before it
writes anything.

A purpose holds one `current` key id and, after a rotation (`tether keys rotate`, to come), any
number of `retired` ones; only the current key may write.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Mapping

from sqlalchemy import Connection, func, select, union

from connectors.store import Store
from schemas import tables as t
from schemas.errors import TetherError
from sharing.keys import KeyRing, key_origin

PURPOSES = {"token": "TETHER_TOKEN_KEY", "identity": "TETHER_IDENTITY_KEY"}
_PG_BIND_LOCK = 7_246_372  # advisory lock held while the first run records its keys
_ENCRYPTED_WITH = (t.staged_pupils, t.staged_sc_persons, t.staged_camhs_referrals)


class WrongKeyError(TetherError):
    """The store was built with another key than the one this process was given."""


def store_label(store: Store) -> str:
    """The store's URL with any password hidden, for messages."""
    return store.engine.url.render_as_string(hide_password=True)


def current_key_ids(store: Store) -> dict[str, str]:
    """The key id each purpose's data was built with ({} for a store no run has used yet)."""
    rows = store.records(t.store_keys, t.store_keys.c.state == "current")
    return {row["purpose"]: row["key_id"] for row in rows}


def check_keys(store: Store, keys: KeyRing, env: Mapping[str, str] | None = None,
               at: datetime | None = None) -> dict[str, str]:
    """Refuse keys the store was not built with; on first use, record these keys as the store's.

    Raises `WrongKeyError` (one line naming the store, both key ids and where the key came from)
    before anything is written. Returns the store's key ids by purpose.
    """
    offered = {"token": keys.token_key_id, "identity": keys.identity_key_id}
    stored = current_key_ids(store)
    _refuse_others(store, stored, offered, env)
    if set(stored) == set(PURPOSES):
        return stored
    with store.begin() as conn:     # first use: one process records, the others then compare
        if store.dialect == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(_PG_BIND_LOCK)))
        stored = current_key_ids(store)
        _refuse_others(store, stored, offered, env)
        if "identity" not in stored:
            _refuse_unreadable_data(store, conn, offered["identity"], env)
        stamp = at or datetime.now(timezone.utc)
        fresh = [{"purpose": p, "key_id": offered[p], "state": "current", "first_used_at": stamp}
                 for p in PURPOSES if p not in stored]
        store.insert(t.store_keys, fresh)
    return current_key_ids(store)


def _refuse_others(store: Store, stored: dict[str, str], offered: dict[str, str],
                   env: Mapping[str, str] | None) -> None:
    for purpose, variable in PURPOSES.items():
        if purpose in stored and stored[purpose] != offered[purpose]:
            raise WrongKeyError(
                f"the store at {store_label(store)} was built with {purpose} key {stored[purpose]}, "
                f"not {offered[purpose]} ({key_origin(variable, env)}): use the key the store was built "
                f"with; rotating keys is `tether keys rotate` (not yet available)")


def _refuse_unreadable_data(store: Store, conn: Connection, identity_key_id: str,
                            env: Mapping[str, str] | None) -> None:
    """A store filled before key ids were recorded: its identity is encrypted under some key id;
    a different identity key would write what that data's key cannot read."""
    ids = union(*[select(table.c.key_id).where(table.c.key_id.is_not(None)).distinct()
                  for table in _ENCRYPTED_WITH])
    in_use = sorted({row[0] for row in conn.execute(ids)} - {identity_key_id})
    if in_use:
        raise WrongKeyError(
            f"the store at {store_label(store)} holds identity encrypted with identity key "
            f"{', '.join(in_use)}, not {identity_key_id} ({key_origin(PURPOSES['identity'], env)}): use "
            f"the key the store was built with; rotating keys is `tether keys rotate` (not yet available)")
