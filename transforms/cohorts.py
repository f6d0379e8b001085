"""Cohorts of children as of a date (docs/dfe-rules.md#cohorts).

- `current_cwsw`: a child with a social worker — an open CIN, CPP or CLA episode on the date
  (start <= date, and no end or end >= date: an episode ending today is still open today);
- `ever6_cwsw`: any CIN, CPP or CLA episode overlapping the six years up to the date, inclusive at
  both ends — an episode that ended exactly on (date − 6 years) counts;
- `cla`: an open looked-after episode;
- `ehcp` / `sen_support`: the current school records an EHC plan (`E`) / SEN support (`K`).

CLA episodes whose legal status is a short break (V1, V3, V4 by default) are respite, not care:
they count for no cohort (DfE Ever6 methodology excludes respite-only care). A short-breaks child
who also has an open CIN episode is in `current_cwsw` through that episode.

`status` for current_cwsw and ever6_cwsw is the highest of CLA > CPP > CIN among the episodes that
qualify; cla carries CLA; the SEN cohorts carry none. Restricted children are members like any
other child (cohorts feed aggregates); the child record marks them restricted.
"""
from __future__ import annotations

import datetime as dt

import pandas as pd

from transforms.record import as_of_date, dates

COHORT_COLUMNS = ["child_key", "cohort", "status"]
OUT_COLUMNS = COHORT_COLUMNS + ["as_of"]
EPISODE_RANK = {"CIN": 1, "CPP": 2, "CLA": 3}
SEN_COHORTS = {"E": "ehcp", "K": "sen_support"}


def years_before(day: dt.date, years: int) -> dt.date:
    """The same calendar date `years` earlier (29 February falls back to 28 February)."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def _episodes(episodes: pd.DataFrame, links: pd.DataFrame, excluded: set[str]) -> pd.DataFrame:
    """Qualifying episodes with the child_key of their person: CIN/CPP/CLA, short breaks dropped."""
    sc = links[links["source_kind"] == "social_care"][["record_ref", "child_key"]]
    eps = episodes.merge(sc, left_on="person_ref", right_on="record_ref")
    eps = eps.assign(
        episode_type=eps["episode_type"].astype(str).str.strip().str.upper(),
        _start=dates(eps["start_date"]),
        _end=dates(eps["end_date"]) if "end_date" in eps else None,
    )
    legal = eps["legal_status"] if "legal_status" in eps else pd.Series(None, index=eps.index)
    short_break = (eps["episode_type"] == "CLA") & legal.fillna("").astype(str).str.strip().str.upper().isin(excluded)
    return eps[eps["episode_type"].isin(list(EPISODE_RANK)) & ~short_break & eps["_start"].notna()]


def _highest(types: pd.Series) -> str:
    return max(types, key=EPISODE_RANK.__getitem__)


def cohorts(episodes: pd.DataFrame, links: pd.DataFrame, record: pd.DataFrame, *,
            as_of: dt.datetime, ever6_years: int = 6,
            excluded_legal_status=("V1", "V3", "V4")) -> pd.DataFrame:
    """The cohort_membership table as of `as_of`'s date (rules in the module docstring)."""
    day = as_of_date(as_of)
    window_start = years_before(day, ever6_years)
    parts: list[pd.DataFrame] = []

    if not episodes.empty and not links.empty:
        eps = _episodes(episodes, links, {s.upper() for s in excluded_legal_status})
        open_now = [s <= day and (e is None or e >= day) for s, e in zip(eps["_start"], eps["_end"])]
        in_window = [s <= day and (e is None or e >= window_start) for s, e in zip(eps["_start"], eps["_end"])]
        current = eps[pd.Series(open_now, index=eps.index, dtype=bool)]
        ever6 = eps[pd.Series(in_window, index=eps.index, dtype=bool)]
        for name, chosen in (("current_cwsw", current), ("ever6_cwsw", ever6)):
            if not chosen.empty:
                status = chosen.groupby("child_key")["episode_type"].agg(_highest).reset_index()
                parts.append(status.rename(columns={"episode_type": "status"}).assign(cohort=name))
        cla = current[current["episode_type"] == "CLA"]["child_key"].drop_duplicates()
        parts.append(pd.DataFrame({"child_key": cla, "cohort": "cla", "status": "CLA"}))

    if not record.empty and "sen_provision" in record:
        for code, name in SEN_COHORTS.items():
            keys = record.loc[record["sen_provision"] == code, "child_key"].drop_duplicates()
            parts.append(pd.DataFrame({"child_key": keys, "cohort": name, "status": None}))

    parts = [p[COHORT_COLUMNS] for p in parts if not p.empty]
    if not parts:
        return pd.DataFrame(columns=OUT_COLUMNS)
    out = pd.concat(parts, ignore_index=True).sort_values(["cohort", "child_key"], ignore_index=True)
    out["status"] = out["status"].astype(object).where(out["status"].notna(), None)
    out["as_of"] = as_of
    return out[OUT_COLUMNS]
