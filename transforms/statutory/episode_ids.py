"""Episode ids for episodes read from a statutory return, which has none of its own.

In the canonical (plaintext, in-memory) frame the id is `<type>:<LA child id>:<start date>`, e.g.
`cla:LA001:2024-04-01`: deterministic, so a return sent again updates rather than duplicates. It
embeds the LA child id, an identity value, so before an episode is staged
`pseudonymise_episode_ids` replaces that part with the person's token — the same token as the
staged `person_ref` — giving `cla:<person_ref>:2024-04-01` (79 characters at most).
"""
from __future__ import annotations

import datetime as dt

import pandas as pd

from transforms.pseudonymise import SC_PERSON_NS, record_ref


def episode_id(episode_type: str, person_id: str | None, start: dt.date | None) -> str:
    """The canonical id of a return's episode."""
    return f"{episode_type.lower()}:{person_id}:{start.isoformat() if start else ''}"


def pseudonymise_episode_ids(episodes: pd.DataFrame, token_key: bytes) -> pd.DataFrame:
    """A copy of `episodes` whose return-made ids carry the person token instead of the LA child id.

    Only ids exactly of the form `episode_id(type, person_id, start_date)` are rewritten, so the
    case-management system's own episode ids (merged in by `merge_returns_with_extract`) pass
    through unchanged.
    """
    out = episodes.copy()
    rewritten = []
    for eid, kind, person, start in zip(out["episode_id"], out["episode_type"], out["person_id"],
                                        out["start_date"]):
        start_day = start if isinstance(start, dt.date) and not isinstance(start, dt.datetime) else None
        if start_day is not None and isinstance(kind, str) and eid == episode_id(kind, person, start_day):
            eid = episode_id(kind, record_ref(token_key, SC_PERSON_NS, person), start_day)
        rewritten.append(eid)
    out["episode_id"] = pd.Series(rewritten, index=out.index, dtype=object)
    return out
