"""The multi-agency child record: one row per child, what each agency knows, as of a moment.

Education (current school, year group, SEN provision, free school meals), social care (the
person record, whether it is restricted) and health (only "open CAMHS involvement: yes/no,
since, team contact" — never clinical detail) meet here under one pseudonymous `child_key`.

Also home to what "as of" and "on roll" mean, which signals, cohorts and flags share.
"""
from __future__ import annotations

import datetime as dt

import pandas as pd

from schemas.calendar import LONDON

RECORD_COLUMNS = [
    "child_key", "laestab", "pupil_ref", "year_group", "sen_provision", "fsm_eligible",
    "person_ref", "restricted", "in_school_feed", "in_social_care", "in_health",
    "camhs_open", "camhs_since", "camhs_team_contact", "as_of",
]
CAMHS_OPEN_STATUSES = ("open", "waiting")


def as_of_date(as_of: dt.datetime) -> dt.date:
    """The Europe/London calendar date of `as_of` (a naive datetime is taken as London time)."""
    if as_of.tzinfo is None:
        return as_of.date()
    return as_of.astimezone(LONDON).date()


def dates(values: pd.Series) -> pd.Series:
    """A column of dates as `datetime.date` objects, with None where missing."""
    if len(values) == 0:
        return pd.Series([], index=values.index, dtype=object)
    converted = pd.to_datetime(values, errors="coerce")
    out = converted.dt.date.astype(object)
    out[converted.isna()] = None
    return out


def between(values: pd.Series, start: dt.date | None, end: dt.date) -> pd.Series:
    """True where a date column falls within [start, end] (no start: up to end; missing: never)."""
    converted = pd.to_datetime(values, errors="coerce")
    inside = converted.notna() & (converted <= pd.Timestamp(end))
    return inside if start is None else inside & (converted >= pd.Timestamp(start))


def truthy(values: pd.Series) -> pd.Series:
    """A yes/no column as booleans, missing counting as no."""
    return pd.Series([False if v is None or pd.isna(v) else bool(v) for v in values],
                     index=values.index, dtype=bool)


def on_roll(pupils: pd.DataFrame, as_of: dt.datetime) -> pd.DataFrame:
    """Roll rows of pupils on roll on `as_of`'s date: admitted by then and not yet left.

    The leaving date is the last day on roll (the MIS convention), so a pupil leaving today is
    still on roll today. A missing admission date does not take a pupil off roll, and a leaving
    date before the admission date is ignored (one of them is wrong; ingest records the issue).
    """
    if pupils.empty:
        return pupils.copy()
    day = as_of_date(as_of)
    admitted = dates(pupils["admission_date"]) if "admission_date" in pupils else pd.Series(None, index=pupils.index)
    leaving = dates(pupils["leaving_date"]) if "leaving_date" in pupils else pd.Series(None, index=pupils.index)
    keep = [(a is None or a <= day) and (l is None or l >= day or (a is not None and l < a))
            for a, l in zip(admitted, leaving)]
    return pupils[pd.Series(keep, index=pupils.index, dtype=bool)]


def _current_school(links: pd.DataFrame, pupils: pd.DataFrame, as_of: dt.datetime) -> pd.DataFrame:
    """Per child, the latest roll row on roll as of `as_of` (latest admission, then latest extract)."""
    cols = ["child_key", "laestab", "pupil_ref", "year_group", "sen_provision", "fsm_eligible"]
    school_links = links[links["source_kind"] == "school"][["record_ref", "child_key"]]
    current = on_roll(pupils, as_of)
    if current.empty or school_links.empty:
        return pd.DataFrame(columns=cols)
    current = current.merge(school_links, left_on="pupil_ref", right_on="record_ref")
    current = current.assign(
        _admitted=pd.to_datetime(current.get("admission_date"), errors="coerce"),
        _extract=pd.to_datetime(current.get("extract_date"), errors="coerce"),
    ).sort_values(["child_key", "_admitted", "_extract", "laestab"], na_position="first")
    current = current.drop_duplicates("child_key", keep="last")
    for col in ("year_group", "sen_provision", "fsm_eligible"):
        if col not in current:
            current[col] = None
    return current[cols]


def _camhs_status(links: pd.DataFrame, camhs: pd.DataFrame, as_of: dt.datetime) -> pd.DataFrame:
    """Per child with an open or waiting CAMHS referral not discharged by `as_of`: since, contact."""
    cols = ["child_key", "camhs_since", "camhs_team_contact"]
    health_links = links[links["source_kind"] == "health"][["record_ref", "child_key"]]
    if camhs.empty or health_links.empty:
        return pd.DataFrame(columns=cols)
    day = as_of_date(as_of)
    refs = camhs.merge(health_links, left_on="patient_ref", right_on="record_ref")
    status = refs["referral_status"].astype(str).str.strip().str.lower()
    referred = dates(refs["referral_date"])
    discharged = dates(refs["discharge_date"]) if "discharge_date" in refs else pd.Series(None, index=refs.index)
    is_open = [
        s in CAMHS_OPEN_STATUSES and r is not None and r <= day and (d is None or d > day)
        for s, r, d in zip(status, referred, discharged)
    ]
    refs = refs.assign(_referred=referred)[pd.Series(is_open, index=refs.index, dtype=bool)]
    if refs.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for child_key, group in refs.groupby("child_key", sort=True):
        latest = group.sort_values(["_referred", "referral_id"]).dropna(subset=["team_contact"])
        rows.append({
            "child_key": child_key,
            "camhs_since": min(group["_referred"]),
            "camhs_team_contact": latest["team_contact"].iloc[-1] if len(latest) else None,
        })
    return pd.DataFrame(rows, columns=cols)


def child_record(links: pd.DataFrame, pupils: pd.DataFrame, sc_persons: pd.DataFrame,
                 camhs: pd.DataFrame, as_of: dt.datetime) -> pd.DataFrame:
    """The child_record table: one row per child_key in `links`.

    - current school: the latest roll row on roll as of `as_of` (none when every enrolment has
      ended — the child is then still `in_school_feed`, with no current school);
    - `person_ref`: the child's social-care record (the lowest ref if the CMS holds duplicates);
      `restricted` when any of the child's social-care records is restricted;
    - `camhs_open`: a referral `open` or `waiting`, received by and not discharged by `as_of`'s
      date (a discharge dated today closes it); `camhs_since` the earliest such referral date;
      `camhs_team_contact` that of the most recent such referral.
    """
    if links.empty:
        return pd.DataFrame(columns=RECORD_COLUMNS)
    kinds = links.groupby("child_key")["source_kind"].agg(set)
    out = pd.DataFrame({"child_key": sorted(kinds.index)})
    out["in_school_feed"] = out["child_key"].map(lambda k: "school" in kinds[k])
    out["in_social_care"] = out["child_key"].map(lambda k: "social_care" in kinds[k])
    out["in_health"] = out["child_key"].map(lambda k: "health" in kinds[k])

    out = out.merge(_current_school(links, pupils, as_of), on="child_key", how="left")

    sc_links = links[links["source_kind"] == "social_care"][["record_ref", "child_key"]]
    restricted_refs = set()
    if not sc_persons.empty and "restricted" in sc_persons:
        restricted_refs = set(sc_persons.loc[truthy(sc_persons["restricted"]), "person_ref"])
    person = sc_links.sort_values("record_ref").drop_duplicates("child_key")
    out = out.merge(person.rename(columns={"record_ref": "person_ref"}), on="child_key", how="left")
    restricted_keys = set(sc_links.loc[sc_links["record_ref"].isin(restricted_refs), "child_key"])
    out["restricted"] = out["child_key"].isin(restricted_keys)

    out = out.merge(_camhs_status(links, camhs, as_of), on="child_key", how="left")
    out["camhs_open"] = out["camhs_since"].notna()
    out["as_of"] = as_of
    flags = ["restricted", "in_school_feed", "in_social_care", "in_health", "camhs_open"]
    out = out[RECORD_COLUMNS].astype({f: bool for f in flags})
    nullable = [c for c in RECORD_COLUMNS if c not in flags and c != "as_of"]
    out[nullable] = out[nullable].astype(object).where(out[nullable].notna(), None)
    return out
