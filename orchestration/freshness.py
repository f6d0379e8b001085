"""Is each school's register, and each daily source's extract, in by when it is expected?

Reads what has arrived from the store (the registers each school has sent, `school_registers`; extract dates from the names
of landed files) and judges it with transforms/freshness.py against `as_of`.
"""
from __future__ import annotations

import pandas as pd
from sqlalchemy import func, select

from connectors.store import Store
from schemas import tables as t
from schemas.config import TetherConfig
from transforms.freshness import school_freshness, source_freshness


def schools(store: Store, config: TetherConfig, as_of) -> pd.DataFrame:
    """Per configured school: the latest register staged, and fresh | late | never_sent."""
    registers = t.school_registers
    with store.engine.connect() as conn:
        last = dict(conn.execute(select(registers.c.laestab, func.max(registers.c.session_date))
                                 .group_by(registers.c.laestab)).all())
    last = {k: pd.Timestamp(v).date() for k, v in last.items() if v is not None}
    return school_freshness(config.schools, last, config.calendar, as_of,
                            {sid: s.expected_by for sid, s in config.sources.items() if s.expected_by})


def daily_sources(config: TetherConfig) -> dict:
    """Sources with a daily delivery time that are not a school's register feed (those are judged
    per school, against the school calendar): the social-care and CAMHS extracts."""
    school_sources = {s.source_id for s in config.schools.values()}
    return {sid: s for sid, s in config.sources.items() if s.expected_by and sid not in school_sources}


def sources(store: Store, config: TetherConfig, as_of) -> pd.DataFrame:
    """Per daily source: the latest extract date among its landed files, and its status."""
    daily = daily_sources(config)
    manifest = store.read(t.landing_manifest, where=t.landing_manifest.c.source_id.in_(list(daily)),
                          columns=["source_id", "file_name", "layout"])
    last: dict = {}
    for row in manifest.itertuples(index=False):
        layout = config.layouts.get(row.layout)
        groups = layout.parse_filename(row.file_name) if layout else None
        if groups and groups.get("extract_date"):
            day = pd.Timestamp(groups["extract_date"]).date()
            last[row.source_id] = max(day, last.get(row.source_id, day))
    return source_freshness(daily, last, as_of)
