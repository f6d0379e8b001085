"""Cohorts as of a date: current and Ever6 CWSW with the CLA > CPP > CIN hierarchy, CLA, SEN."""
import datetime as dt

import pandas as pd

from schemas.calendar import LONDON
from transforms.cohorts import OUT_COLUMNS, cohorts, years_before

AS_OF = dt.datetime(2026, 11, 10, 9, 0, tzinfo=LONDON)
D = dt.date.fromisoformat
LINKS = pd.DataFrame([("social_care", f"s{i}", None, f"c{i}", "self") for i in range(1, 12)],
                     columns=["source_kind", "record_ref", "laestab", "child_key", "linked_on"])


def ep(person, kind, start, end=None, legal=None):
    return {"episode_id": f"{person}-{kind}-{start}", "person_ref": person, "episode_type": kind,
            "start_date": D(start), "end_date": D(end) if end else None, "legal_status": legal,
            "reason_ended": None}


EPISODES = pd.DataFrame([
    ep("s1", "CIN", "2026-01-01"), ep("s1", "CPP", "2026-02-01"),
    ep("s2", "CIN", "2025-01-01"), ep("s2", "CLA", "2025-06-01", legal="C2"),
    ep("s3", "CLA", "2026-09-01", legal="V3"),                       # short breaks only
    ep("s4", "CIN", "2019-01-01", "2020-11-10"),                      # ends exactly on the window start
    ep("s5", "CIN", "2019-01-01", "2020-11-09"),                      # ends the day before
    ep("s6", "CLA", "2021-01-01", "2022-03-31", legal="C2"), ep("s6", "CIN", "2026-05-01"),
    ep("s7", "CPP", "2026-01-01", "2026-11-10"),                      # ends today
    ep("s8", "CIN", "2026-11-11"),                                    # starts tomorrow
    ep("s9", "CLA", "2022-01-01", "2023-01-01", legal="V1"), ep("s9", "CIN", "2021-01-01", "2022-06-01"),
    ep("s10", "CPP", "2026-10-01"),                                   # restricted child
    ep("s99", "CLA", "2026-01-01", legal="C2"),                       # not linked: ignored
    ep("s11", "CLA", "2026-01-01", "2026-06-01", legal="V4"),
])
RECORD = pd.DataFrame({"child_key": ["c1", "c2", "c4", "c10"], "sen_provision": ["E", "K", "N", None],
                       "restricted": [False, False, False, True]})


def members():
    out = cohorts(EPISODES, LINKS, RECORD, as_of=AS_OF)
    assert list(out.columns) == OUT_COLUMNS
    assert (out["as_of"] == AS_OF).all()
    return {(r.cohort, r.child_key): r.status for r in out.itertuples()}


def cohort(name):
    return {k: s for (c, k), s in members().items() if c == name}


def test_current_cwsw_with_highest_open_status():
    assert cohort("current_cwsw") == {"c1": "CPP", "c2": "CLA", "c6": "CIN", "c7": "CPP", "c10": "CPP"}


def test_ever6_window_edges_and_hierarchy():
    assert cohort("ever6_cwsw") == {"c1": "CPP", "c2": "CLA", "c4": "CIN", "c6": "CLA", "c7": "CPP",
                                    "c9": "CIN", "c10": "CPP"}


def test_short_breaks_are_excluded_everywhere():
    got = members()
    assert not any(k in ("c3", "c11") for _, k in got)
    assert cohort("ever6_cwsw")["c9"] == "CIN"      # its V1 CLA episode does not lift it to CLA


def test_cla_cohort_is_open_non_excluded_care():
    assert cohort("cla") == {"c2": "CLA"}


def test_sen_cohorts_from_the_record():
    assert cohort("ehcp") == {"c1": None}
    assert cohort("sen_support") == {"c2": None}


def test_excluded_legal_statuses_are_configurable():
    out = cohorts(EPISODES, LINKS, RECORD, as_of=AS_OF, excluded_legal_status=())
    assert set(out.loc[out["cohort"] == "cla", "child_key"]) == {"c2", "c3"}


def test_ever6_years_is_configurable():
    out = cohorts(EPISODES, LINKS, RECORD, as_of=AS_OF, ever6_years=4)     # window from 2022-11-10
    assert set(out.loc[out["cohort"] == "ever6_cwsw", "child_key"]) == {"c1", "c2", "c6", "c7", "c10"}


def test_years_before_on_leap_day():
    assert years_before(dt.date(2028, 2, 29), 6) == dt.date(2022, 2, 28)


def test_empty_inputs():
    out = cohorts(EPISODES.iloc[0:0], LINKS, RECORD.iloc[0:0], as_of=AS_OF)
    assert out.empty and list(out.columns) == OUT_COLUMNS
