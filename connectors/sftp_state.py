"""An SFTP source's poll state, kept in the store so that any worker polls on where the last stopped.

The state (`connectors.sftp.poll_endpoint`) is what one poll tells the next: files seen with a size
and mtime and since when (`observed`: a file is taken once it has been unchanged for
`stable_seconds`), and files landed and left in place on the server (`landed`: not downloaded
again while their size and mtime stay the same). In the store, a run in another pod or on another
machine sees what the last run saw.

A file is known by `name_key`, a keyed HMAC of its exact name under the token key, never by the
name: a sender may name a file after a child. The key is enough to recognise the same file in the
next listing and tells nothing else. After a token key rotation the keys no longer match: each
left file is downloaded once more (and found already landed, by its content) and stability
observations start again, so nothing is lost or landed twice.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from typing import Any

from sqlalchemy import delete, insert, select

from connectors.store import to_utc
from schemas.tables import sftp_poll_state

OBSERVED, LANDED = "observed", "landed"


def name_key(key: bytes, name: str) -> str:
    """The keyed HMAC-SHA256 (64 hex) of a remote file name: how the stored state knows the file."""
    return hmac.new(key, b"sftp-file-name\x1f" + name.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def poll_state_get(store: Any, source_id: str) -> dict:
    """The source's state as `poll_endpoint` takes it, files known by `name_key`; empty before its
    first poll: ``{"observed": {key: {"size", "mtime", "since"}}, "landed": {key: [size, mtime]}}``."""
    query = select(sftp_poll_state).where(sftp_poll_state.c.source_id == source_id)
    state: dict = {OBSERVED: {}, LANDED: {}}
    with store.engine.connect() as conn:
        for row in conn.execute(query).mappings():
            if row["kind"] == OBSERVED:
                state[OBSERVED][row["name_key"]] = {"size": row["size_bytes"], "mtime": row["mtime"],
                                                    "since": to_utc(row["observed_since"]).timestamp()}
            else:
                state[LANDED][row["name_key"]] = [row["size_bytes"], row["mtime"]]
    return state


def poll_state_set(store: Any, source_id: str, state: dict, at: dt.datetime) -> None:
    """Replace the source's stored state with `state` (files known by `name_key`), as of `at`."""
    rows = [{"source_id": source_id, "kind": OBSERVED, "name_key": k, "size_bytes": int(v["size"]),
             "mtime": int(v["mtime"]), "updated_at": at,
             "observed_since": dt.datetime.fromtimestamp(float(v["since"]), dt.timezone.utc)}
            for k, v in state.get(OBSERVED, {}).items()]
    rows += [{"source_id": source_id, "kind": LANDED, "name_key": k, "size_bytes": int(size), "mtime": int(mtime),
              "updated_at": at, "observed_since": None}
             for k, (size, mtime) in state.get(LANDED, {}).items()]
    # Inside the caller's store transaction when there is one (as the ODBC watermark is).
    begin = store.begin if hasattr(store, "begin") else store.engine.begin
    with begin() as conn:
        conn.execute(delete(sftp_poll_state).where(sftp_poll_state.c.source_id == source_id))
        if rows:
            conn.execute(insert(sftp_poll_state), rows)
