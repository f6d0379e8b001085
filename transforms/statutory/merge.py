"""One record per child and per episode across the case-management extract and the returns.

docs/layouts.md#statutory-returns: a record in both a statutory return and the extract is one record, and the
extract wins. Persons match on LA child id (`person_id`); episodes on (person_id, episode_type,
start_date), since the extract's episode ids are the case-management system's own.

Restriction is the exception to "the extract wins": a child is restricted if the extract says so,
if a return says so, or if any episode in either ended in adoption (docs/dfe-rules.md#information-sharing). The
adoption is looked for before duplicates are dropped, because the extract's copy of an episode does
not carry the SSDA903 reason it ended.

Matching by UPN is left to linkage, which weighs it with the other identifiers.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import pandas as pd

# SSDA903 reasons an episode ceased that mean adoption, and the CIN census reason for closure.
ADOPTED_CLA = frozenset({"E11", "E12"})
ADOPTED_CIN = frozenset({"RC1"})


def adopted_person_ids(episodes: pd.DataFrame) -> set[str]:
    """LA child ids of children with a CLA episode that ended E11/E12 or a CIN episode closed RC1."""
    if episodes.empty or "reason_ended" not in episodes.columns:
        return set()
    reason = episodes["reason_ended"].map(lambda v: str(v).strip().upper() if _present(v) else "")
    kind = episodes["episode_type"].map(lambda v: str(v).strip().upper() if _present(v) else "")
    adopted = (kind.eq("CLA") & reason.isin(ADOPTED_CLA)) | (kind.eq("CIN") & reason.isin(ADOPTED_CIN))
    return {_person_key(v) for v in episodes.loc[adopted, "person_id"] if _present(v)}


def mark_restricted(persons: pd.DataFrame, person_ids: Iterable[str]) -> pd.DataFrame:
    """A copy of `persons` with `restricted` set for the given LA child ids (never cleared)."""
    ids = {_person_key(v) for v in person_ids}
    out = persons.copy()
    current = out["restricted"].map(_flag) if "restricted" in out.columns else pd.Series(False, index=out.index)
    out["restricted"] = (current | out["person_id"].map(_person_key).isin(ids)).astype(bool)
    return out


def merge_returns_with_extract(
    extract_persons: pd.DataFrame,
    return_persons: pd.DataFrame,
    extract_episodes: pd.DataFrame,
    return_episodes: pd.DataFrame,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(persons, episodes): extract rows first and whole, then the return rows the extract lacks.

    Within the returns, the first row for a person or an episode key stands (the caller orders the
    returns). Columns the caller added (source, file, row number) travel with each row.
    """
    restricted_ids = (
        adopted_person_ids(extract_episodes) | adopted_person_ids(return_episodes)
        | _restricted_ids(extract_persons) | _restricted_ids(return_persons)
    )

    person_keys = return_persons["person_id"].map(_person_key)
    in_extract = set(extract_persons["person_id"].map(_person_key))
    keep = ~person_keys.isin(in_extract) & ~person_keys.duplicated()
    persons = _concat(extract_persons, return_persons[keep])
    persons = mark_restricted(persons, restricted_ids)

    extract_keys = set(_episode_keys(extract_episodes))
    return_keys = pd.Series(_episode_keys(return_episodes), index=return_episodes.index, dtype=object)
    keep = ~return_keys.isin(extract_keys) & ~return_keys.duplicated()
    episodes = _concat(extract_episodes, return_episodes[keep])
    return persons, episodes


def _restricted_ids(persons: pd.DataFrame) -> set[str]:
    if persons.empty or "restricted" not in persons.columns:
        return set()
    flagged = persons["restricted"].map(_flag)
    return {_person_key(v) for v in persons.loc[flagged, "person_id"]}


def _episode_keys(episodes: pd.DataFrame) -> list[tuple]:
    return [
        (_person_key(p), str(t).strip().upper(), _day(s))
        for p, t, s in zip(episodes["person_id"], episodes["episode_type"], episodes["start_date"])
    ]


def _concat(first: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    """Rows of both, every column of either; a column one side lacks is None there."""
    columns = list(first.columns) + [c for c in second.columns if c not in first.columns]
    parts = []
    for frame in (first, second):
        frame = frame.copy()
        for column in columns:
            if column not in frame.columns:
                frame[column] = pd.Series([None] * len(frame), index=frame.index, dtype=object)
        parts.append(frame[columns])
    parts = [p for p in parts if not p.empty] or parts[:1]
    return pd.concat(parts, ignore_index=True)


def _person_key(value) -> str:
    return str(value).strip()


def _day(value) -> dt.date | None:
    if not _present(value):
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return pd.Timestamp(value).date()


def _flag(value) -> bool:
    return bool(value) if _present(value) else False


def _present(value) -> bool:
    """False for None, NaN, NaT and pd.NA."""
    return not bool(pd.isna(value))


def staged_social_care(persons: pd.DataFrame, episodes: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Staged persons and episodes as one social-care picture, whichever files they came from.

    - a person is restricted if any source says so or any episode ended in adoption (never cleared);
    - an episode both in a return and in the extract (same person, type and start) is one episode:
      the extract's row wins (return-made ids look like `cla:<person token>:<start>`).
    """
    if persons.empty and episodes.empty:
        return persons, episodes
    adopted = adopted_person_ids(episodes.rename(columns={"person_ref": "person_id"}))
    if len(persons):
        persons = mark_restricted(persons.rename(columns={"person_ref": "person_id"}), adopted) \
            .rename(columns={"person_id": "person_ref"})
    if len(episodes):
        from_return = episodes["episode_id"].astype(str).str.match(r"^(cin|cpp|cla):")
        episodes = (episodes.assign(_return=from_return)
                    .sort_values("_return", kind="stable")
                    .drop_duplicates(["person_ref", "episode_type", "start_date"], keep="first")
                    .drop(columns="_return"))
    return persons, episodes
