"""The store's list of files seen in a source's folder and not landed, for `tether status`.

Each landing of a source replaces that source's list with what it saw this time: a file that has
since landed, or gone from the folder, drops off; one still there keeps the time it was first seen.
Names are stored escaped (`connectors.arrivals.shown_name`), never as paths.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Iterable

import pandas as pd

from connectors.arrivals import DEFAULT_STALE_SECONDS, Unlanded
from connectors.store import Store, to_utc
from schemas.config import ConfigError
from schemas.tables import unlanded_files


def in_flight_stale_seconds(source: Any) -> float:
    """The source's `in_flight_stale_seconds` option (how long an upload may stay in flight
    before it is reported as stale), 24 hours by default."""
    raw = getattr(source, "options", {}).get("in_flight_stale_seconds", DEFAULT_STALE_SECONDS)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = -1.0
    if value <= 0:
        raise ConfigError(f"sources.toml: source {source.source_id!r}: in_flight_stale_seconds must be a "
                          f"positive number of seconds, not {raw!r}")
    return value


def record_unlanded(store: Store, source_id: str, unlanded: Iterable[Unlanded], at: dt.datetime) -> int:
    """Replace the source's list with `unlanded` as seen at `at`; returns how many are listed."""
    stamp = to_utc(at)
    where = unlanded_files.c.source_id == source_id
    with store.begin():
        first = {r["file_name"]: r["first_seen_at"] for r in store.records(unlanded_files, where)}
        rows = {}
        for u in unlanded:
            rows[u.name[:400]] = {"source_id": source_id, "file_name": u.name[:400], "state": u.state,
                                  "reason": u.reason, "size_bytes": u.size,
                                  "first_seen_at": first.get(u.name[:400], stamp), "last_seen_at": stamp}
        frame = pd.DataFrame(list(rows.values()), columns=[c.name for c in unlanded_files.c])
        return store.replace(unlanded_files, frame, where=where)


def unlanded_by_source(store: Store) -> list[dict]:
    """Every listed file, by source and name (for `tether status`)."""
    return store.records(unlanded_files)
