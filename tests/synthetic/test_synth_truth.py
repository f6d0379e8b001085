"""The ground-truth arithmetic on hand-computed examples."""
from __future__ import annotations

import datetime as dt

from schemas.config import load_config
from synthetic import truth
from synthetic.pupils import Child
from synthetic.social_care import Allocation, Episode, ScPerson

D = dt.date


def test_category_table_agrees_with_the_code_table():
    codes = load_config().codes
    for mark, category in truth.CATEGORY.items():
        assert codes.resolve(mark, D(2026, 11, 2)).category == category, mark


def test_measures_count_only_possible_sessions_in_the_period():
    days = {
        D(2026, 9, 3): ["/", "\\"],      # present
        D(2026, 9, 4): ["L", "I"],       # present, authorised
        D(2026, 9, 7): ["#", "#"],       # not possible
        D(2026, 9, 8): ["K", "E"],       # aea, authorised (suspension)
        D(2026, 9, 9): ["U", "C2"],      # unauthorised, authorised (part-time)
        D(2026, 9, 10): ["N", None],     # unauthorised, no mark
        D(2026, 7, 20): ["O", "O"],      # previous academic year: outside the period
    }
    m = truth.measures(days, D(2026, 8, 1), D(2026, 11, 30))
    assert (m.possible, m.present, m.aea, m.authorised, m.unauthorised) == (9, 3, 1, 3, 2)
    assert (m.suspension, m.part_time) == (1, 1)
    assert m.absence_rate == 5 / 9


def test_consecutive_run_skips_days_without_possible_sessions_and_stops_at_other_marks():
    days = {
        D(2026, 11, 19): ["O", "O"],
        D(2026, 11, 20): ["/", "N"],     # mixed day: breaks the run
        D(2026, 11, 23): ["G", "O"],
        D(2026, 11, 24): ["#", "#"],     # closure: skipped
        D(2026, 11, 25): ["N", "#"],     # the only possible session is N: counts
        D(2026, 11, 26): ["O", "N"],
        D(2026, 11, 30): ["N", None],    # as-of morning, afternoon not yet marked: not yet a whole day
    }
    assert truth.consecutive_unauthorised_days(days) == 3
    days[D(2026, 11, 30)] = ["U", None]  # arrived late: the child was in school
    assert truth.consecutive_unauthorised_days(days) == 0
    assert truth.consecutive_unauthorised_days({}) == 0


def _person(*episodes, restricted=False, allocations=()):
    child = Child("C1", "A", "B", "F", D(2012, 1, 1), "CT1 1AA", None, "9990000000")
    return ScPerson("P1", child, "A", "B", D(2012, 1, 1), "F", "CT1 1AA", None, None, restricted,
                    episodes=list(episodes), allocations=list(allocations))


def test_cohort_current_ever6_and_status():
    day = D(2026, 11, 30)
    c = truth.cohort(_person(Episode("1", "CIN", D(2026, 1, 1)), Episode("2", "CPP", D(2026, 2, 1)),
                             allocations=[Allocation("W1", D(2026, 1, 1), D(2026, 5, 1)),
                                          Allocation("W2", D(2026, 5, 2))]), day)
    assert (c.current_cwsw, c.ever6_cwsw, c.ever6_status, c.cla_now, c.allocated_worker_id) == (True, True, "CPP", False, "W2")
    # closed CLA inside the window outranks an open CIN; ending exactly 6 years before still overlaps
    c = truth.cohort(_person(Episode("1", "CLA", D(2019, 1, 1), D(2020, 11, 30), "C2"),
                             Episode("2", "CIN", D(2026, 3, 1))), day)
    assert (c.current_cwsw, c.ever6_status, c.cla_now, c.allocated_worker_id) == (True, "CLA", False, "")
    c = truth.cohort(_person(Episode("1", "CIN", D(2019, 1, 1), D(2020, 11, 29))), day)
    assert (c.current_cwsw, c.ever6_cwsw, c.ever6_status) == (False, False, "")
    # short breaks (V3/V4) are not CLA for Ever6
    c = truth.cohort(_person(Episode("1", "CLA", D(2025, 6, 1), D(2025, 6, 8), "V3")), day)
    assert (c.current_cwsw, c.ever6_cwsw) == (False, False)
    c = truth.cohort(_person(Episode("1", "CLA", D(2025, 6, 1), None, "C2"), restricted=True), day)
    assert (c.cla_now, c.restricted, c.ever6_status) == (True, True, "CLA")
    assert truth.cohort(None, day) == truth.Cohort()
