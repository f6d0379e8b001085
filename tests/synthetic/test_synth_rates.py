"""Rates on a medium LA (6 schools, 2000 pupils) fall within broad published bounds (docs/dfe-rules.md#published-rates)."""
from __future__ import annotations

import statistics


def _b(value: str) -> bool:
    return value == "True"


def test_attendance_rates_are_realistic(medium_la, la_files):
    pupils = la_files.read_truth(medium_la, "pupils.csv")
    cohorts = {r["child_id"]: r for r in la_files.read_truth(medium_la, "cohorts.csv")}
    rates = [float(p["absence_rate"]) for p in pupils]
    assert 0.92 <= 1 - statistics.median(rates) <= 0.97
    pa = sum(_b(p["persistent_absence"]) for p in pupils) / len(pupils)
    sa = sum(_b(p["severe_absence"]) for p in pupils) / len(pupils)
    assert 0.13 <= pa <= 0.28 and 0.005 <= sa <= 0.035
    cwsw = [p for p in pupils if _b(cohorts[p["child_id"]]["current_cwsw"])]
    cwsw_pa = sum(_b(p["persistent_absence"]) for p in cwsw) / len(cwsw)
    cwsw_sa = sum(_b(p["severe_absence"]) for p in cwsw) / len(cwsw)
    assert 0.35 <= cwsw_pa <= 0.75 and 0.03 <= cwsw_sa <= 0.25
    assert cwsw_pa > 2 * pa
    assert any(int(p["suspension_sessions"]) for p in cwsw)
    assert any(int(p["part_time_sessions"]) for p in pupils)
    assert any(int(p["aea_sessions"]) for p in pupils)
    assert any(int(p["consecutive_unauthorised_days"]) >= 10 for p in pupils)


def test_cohort_sizes_are_realistic(medium_la, la_files):
    cohorts = la_files.read_truth(medium_la, "cohorts.csv")
    in_school = [c for c in cohorts if _b(c["in_school"])]
    current = sum(_b(c["current_cwsw"]) for c in in_school) / len(in_school)
    ever6 = sum(_b(c["ever6_cwsw"]) for c in in_school) / len(in_school)
    camhs = sum(_b(c["in_health"]) for c in in_school) / len(in_school)
    assert 0.03 <= current <= 0.06 and ever6 > current + 0.03
    assert 0.015 <= camhs <= 0.07
    statuses = {c["ever6_status"] for c in cohorts}
    assert statuses == {"", "CIN", "CPP", "CLA"}
    assert any(_b(c["cla_now"]) for c in in_school)


def test_report_counts_match_the_files(medium_la):
    files = [p for p in medium_la.inbox_dir.rglob("*.csv")]
    assert sum(c.files for c in medium_la.sources.values()) == len(files)
    rows = sum(len(p.read_bytes().splitlines()) - 1 for p in files)
    assert sum(c.rows for c in medium_la.feeds.values()) == rows
    assert set(medium_la.feeds) == {"attendance", "pupils", "sc_persons", "sc_episodes", "sc_allocations",
                                    "camhs_referrals"}
