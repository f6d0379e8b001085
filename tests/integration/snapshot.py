"""The whole store as comparable values: every table, every row, without what legitimately differs
between two runs over the same files (times, encryption nonces, serial ids, the audit chain's
hashes over its times, the day a copy landed)."""
from __future__ import annotations

from collections import Counter

import pandas as pd
from sqlalchemy import DateTime, LargeBinary

from connectors.store import Store
from schemas import tables as t

VARYING = {
    "audit_log": {"hash", "prev_hash"},             # chained over `at`
    "landing_manifest": {"landing_path"},           # <source>/<day received>/<sha>.bin
}


def comparable_columns(table) -> list[str]:
    skip = VARYING.get(table.name, set())
    return [c.name for c in table.c
            if not isinstance(c.type, (DateTime, LargeBinary)) and c.name not in skip
            and not (c.primary_key and c.autoincrement is True)]


def snapshot(store: Store) -> dict[str, Counter]:
    """Each table of the store as a multiset of rows (so duplicates show)."""
    out = {}
    for table in t.metadata.sorted_tables:
        cols = comparable_columns(table)
        frame = store.read(table, columns=cols)
        out[table.name] = Counter(tuple(None if _missing(v) else v for v in row)
                                  for row in frame.itertuples(index=False, name=None))
    return out


def differences(got: dict[str, Counter], want: dict[str, Counter]) -> dict[str, dict]:
    """Per table, the rows only in `got` and only in `want` (a few of each), for a readable failure."""
    diff = {}
    for name in sorted(set(got) | set(want)):
        have, should = got.get(name, Counter()), want.get(name, Counter())
        extra, missing = have - should, should - have
        if extra or missing:
            diff[name] = {"extra": sum(extra.values()), "missing": sum(missing.values()),
                          "example_extra": list(extra)[:2], "example_missing": list(missing)[:2]}
    return diff


def _missing(value) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
