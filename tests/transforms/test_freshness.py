"""Source freshness per school, against the calendar and each school's expected delivery time."""
import datetime as dt

from schemas.calendar import LONDON
from schemas.config import School, load_config
from transforms.freshness import expected_register_date, school_freshness

CAL = load_config().calendar
SCHOOLS = {"8862001": School("8862001", "Riverside", source_id="mis", expected_by=dt.time(9, 30)),
           "8862002": School("8862002", "Hillside", source_id="mis")}


def at(y, m, d, hh, mm):
    return dt.datetime(y, m, d, hh, mm, tzinfo=LONDON)


def test_before_the_deadline_yesterdays_register_is_enough():
    # Monday 30 Nov 2026 09:00, deadline 09:30: Friday 27 Nov is the register expected
    assert expected_register_date(CAL, "8862001", at(2026, 11, 30, 9, 0), dt.time(9, 30)) == dt.date(2026, 11, 27)


def test_after_the_deadline_todays_register_is_expected():
    assert expected_register_date(CAL, "8862001", at(2026, 11, 30, 9, 31), dt.time(9, 30)) == dt.date(2026, 11, 30)


def test_half_term_is_skipped_back_to_the_last_school_day():
    # Wednesday 28 Oct 2026 is in half term: the last school day was Friday 23 Oct
    assert expected_register_date(CAL, None, at(2026, 10, 28, 12, 0), dt.time(9, 30)) == dt.date(2026, 10, 23)


def test_a_school_that_stopped_sending_is_late_not_present():
    out = school_freshness(SCHOOLS, {"8862001": dt.date(2026, 11, 27), "8862002": dt.date(2026, 11, 30)},
                           CAL, at(2026, 11, 30, 11, 0)).set_index("laestab")
    assert out.loc["8862001", "status"] == "late"
    assert out.loc["8862001", "hours_late"] == 1.5
    assert out.loc["8862002", "status"] == "fresh"


def test_default_deadline_and_never_sent():
    out = school_freshness(SCHOOLS, {}, CAL, at(2026, 11, 30, 9, 45)).set_index("laestab")
    assert out.loc["8862002", "expected_by"] == "10:00"
    assert out.loc["8862002", "expected_date"] == dt.date(2026, 11, 27)   # before 10:00, Friday's is expected
    assert set(out["status"]) == {"never_sent"}


def test_source_deadline_applies_when_the_school_has_none():
    out = school_freshness(SCHOOLS, {"8862002": dt.date(2026, 11, 27)}, CAL, at(2026, 11, 30, 9, 45),
                           {"mis": dt.time(9, 40)}).set_index("laestab")
    assert out.loc["8862002", "status"] == "late"


def test_daily_source_expects_todays_extract_after_its_delivery_time():
    from schemas.config import Source
    from transforms.freshness import source_freshness
    sources = {"social_care": Source("social_care", "folder", (), expected_by=dt.time(6, 0)),
               "camhs": Source("camhs", "folder", (), expected_by=dt.time(6, 30))}
    early = source_freshness(sources, {"social_care": dt.date(2026, 11, 29)}, at(2026, 11, 30, 5, 0))
    assert early.set_index("source_id").loc["social_care", "status"] == "fresh"     # yesterday's is enough at 05:00
    late = source_freshness(sources, {"social_care": dt.date(2026, 11, 29)}, at(2026, 11, 30, 9, 45)).set_index("source_id")
    assert late.loc["social_care", "status"] == "late"
    assert late.loc["camhs", "status"] == "never_sent"
