"""Flag rules on today's registers, de-duplication, and who each flag is addressed to."""
import datetime as dt
import hashlib
import json

import pandas as pd

from schemas.calendar import LONDON, SchoolCalendar
from schemas.codes import builtin_code_table
from transforms.flags import DELIVERY_COLUMNS, FLAG_COLUMNS, address_flags, evaluate_flags

CODES = builtin_code_table()
A, B, C = "8864001", "8864002", "8864003"       # B starts its morning later: AM 09:00, closes 09:30
TODAY = dt.date(2026, 11, 9)                     # a Monday in the autumn term (GMT)
CALENDAR = SchoolCalendar.from_mapping({
    "terms": [{"name": "autumn", "start": dt.date(2026, 9, 3), "end": dt.date(2026, 12, 18)}],
    "sessions": {"AM": "08:40", "PM": "13:15"}, "register_close_minutes": 30,
    "schools": {B: {"sessions": {"AM": "09:00"}}},
})
RULES = {
    "unexplained_absence_today": {"cohort": "current_cwsw", "marks": ["N", "O"],
                                  "no_mark_after_register_close": True, "recipients": ["allocated_worker"]},
    "suspension": {"cohort": "current_cwsw", "marks": ["E"], "no_mark_after_register_close": False,
                   "recipients": ["allocated_worker", "virtual_school_if_cla"]},
}
RECIPIENTS = {"team_duty_inbox": {"default": "duty-{team_id}@children.example.gov.uk"},
              "virtual_school": {"address": "virtual.school@children.example.gov.uk"}}

# (child_key, laestab, pupil_ref, leaving_date, in cohort, restricted, today's AM mark or None)
CHILDREN = [
    ("c1", A, "p1", None, True, False, None),        # missing after A's 09:10 close
    ("c2", A, "p2", None, True, False, "N"),
    ("c3", B, "p3", None, True, False, None),        # B closes 09:30
    ("c4", C, "p4", None, True, False, None),        # C has sent nothing today
    ("c5", A, "p5", None, True, False, "U"),         # arrived late: seen
    ("c6", A, "p6", None, False, False, None),       # not a child with a social worker
    ("c7", A, "p7", None, True, True, "N"),          # restricted
    ("c8", A, "p8", dt.date(2026, 11, 6), True, False, None),   # left last Friday
    ("c9", A, "p9", None, True, False, "E"),
    ("c10", A, "p10a", None, True, False, None),     # dual registered: marked present at B
    ("c10", B, "p10b", None, True, False, "/"),
    ("c0", A, "p0", None, False, False, "/"),
    ("c0b", B, "p0b", None, False, False, "/"),
]
LINKS = pd.DataFrame([("school", p, l, k, "upn") for k, l, p, *_ in CHILDREN],
                     columns=["source_kind", "record_ref", "laestab", "child_key", "linked_on"])
ROLL = pd.DataFrame([{"laestab": l, "pupil_ref": p, "admission_date": dt.date(2025, 9, 3), "leaving_date": left}
                     for _, l, p, left, *_ in CHILDREN])
RECORD = pd.DataFrame([{"child_key": k, "restricted": r, "person_ref": f"s-{k}"}
                       for k, _, _, _, _, r, _ in CHILDREN]).drop_duplicates("child_key")
COHORT = pd.DataFrame([{"child_key": k, "cohort": "current_cwsw", "status": "CIN"}
                       for k, _, _, _, member, _, _ in CHILDREN if member]).drop_duplicates()
MARKS = pd.DataFrame([{"laestab": l, "pupil_ref": p, "session_date": TODAY, "session": "AM", "mark": m,
                       "category": CODES.category(m, TODAY)} for _, l, p, _, _, _, m in CHILDREN if m]
                     + [{"laestab": A, "pupil_ref": "p1", "session_date": TODAY - dt.timedelta(days=3),
                         "session": "AM", "mark": "N", "category": "unauthorised"}])   # last Friday: not today


def at(hour, minute):
    return dt.datetime.combine(TODAY, dt.time(hour, minute), tzinfo=LONDON)


def evaluate(as_of, reporting=frozenset({A, B}), **kw):
    return evaluate_flags(RULES, marks=MARKS, roll=ROLL, links=LINKS, record=RECORD, cohort=COHORT,
                          calendar=CALENDAR, as_of=as_of, reporting_schools=set(reporting), **kw)


def raised(flags):
    return {(f.child_key, f.rule, f.session) for f in flags.itertuples()}


def test_flags_at_0915():
    flags = evaluate(at(9, 15))
    assert list(flags.columns) == FLAG_COLUMNS
    assert raised(flags) == {("c1", "unexplained_absence_today", "AM"),
                             ("c2", "unexplained_absence_today", "AM"),
                             ("c9", "suspension", "AM")}


def test_later_school_flags_only_after_its_own_close():
    assert ("c3", "unexplained_absence_today", "AM") in raised(evaluate(at(9, 30)))
    assert ("c3", "unexplained_absence_today", "AM") not in raised(evaluate(at(9, 29)))


def test_no_missing_flags_before_any_register_closes():
    assert raised(evaluate(at(9, 5))) == {("c2", "unexplained_absence_today", "AM"), ("c9", "suspension", "AM")}


def test_school_that_has_not_reported_raises_nothing_for_missing_marks():
    flags = evaluate(at(9, 15), reporting={B})
    assert ("c1", "unexplained_absence_today", "AM") not in raised(flags)
    assert ("c2", "unexplained_absence_today", "AM") in raised(flags)   # a mark is a mark


def test_session_not_yet_sent_is_no_data():
    # at 14:00 the PM registers have closed but no school has sent PM marks: no PM storm
    assert not any(s == "PM" for _, _, s in raised(evaluate(at(14, 0))))


def test_flag_id_and_evidence():
    flags = evaluate(at(9, 15)).set_index("child_key")
    expected = hashlib.sha256(b"c1|unexplained_absence_today|2026-11-09|AM").hexdigest()
    assert flags.loc["c1", "flag_id"] == expected
    assert json.loads(flags.loc["c1", "evidence"]) == {
        "rule": "unexplained_absence_today", "laestab": A, "session_date": "2026-11-09", "session": "AM",
        "mark": "no mark", "register_close": "2026-11-09T09:10:00+00:00"}
    assert json.loads(flags.loc["c2", "evidence"])["mark"] == "N"
    assert flags.loc["c1", "raised_at"] == at(9, 15) and flags.loc["c1", "session_date"] == TODAY
    assert "p1" not in flags.loc["c1", "evidence"]


def test_term_days_missed_in_evidence():
    measures = pd.DataFrame([{"laestab": A, "pupil_ref": "p2", "period": "autumn", "days_missed": 6.5,
                              "unauthorised_sessions": 6}])
    flags = evaluate(at(9, 15), measures=measures).set_index("child_key")
    evidence = json.loads(flags.loc["c2", "evidence"])
    assert (evidence["term_days_missed"], evidence["term_unauthorised_days"]) == (6.5, 3.0)


def test_same_inputs_give_the_same_flags():
    first, again = evaluate(at(9, 15)), evaluate(at(9, 15))
    pd.testing.assert_frame_equal(first, again)
    assert first["flag_id"].is_unique
    later = evaluate(at(9, 40))
    assert set(first["flag_id"]) <= set(later["flag_id"])


def test_u_never_raises_a_missing_flag_even_if_configured():
    rules = {"unexplained_absence_today": {**RULES["unexplained_absence_today"], "marks": ["N", "O", "U"]}}
    flags = evaluate_flags(rules, marks=MARKS, roll=ROLL, links=LINKS, record=RECORD, cohort=COHORT,
                           calendar=CALENDAR, as_of=at(9, 15), reporting_schools={A, B})
    assert "c5" not in set(flags["child_key"])


def test_no_flags_on_a_weekend():
    saturday = dt.datetime(2026, 11, 14, 10, 0, tzinfo=LONDON)
    assert evaluate(saturday).empty


# --- addressing --------------------------------------------------------------------------------

ALLOCATIONS = pd.DataFrame([
    {"person_ref": "s-c1", "worker_id": "w1", "worker_email": "w1@la.example", "team_id": "T1",
     "start_date": dt.date(2026, 1, 1), "end_date": None},
    {"person_ref": "s-c2", "worker_id": "w2", "worker_email": "w2@la.example", "team_id": "T1",
     "start_date": dt.date(2025, 1, 1), "end_date": dt.date(2025, 12, 31)},
    {"person_ref": "s-c2", "worker_id": "w3", "worker_email": "w3@la.example", "team_id": "T2",
     "start_date": dt.date(2026, 1, 1), "end_date": dt.date(2026, 10, 31)},
    {"person_ref": "s-c9", "worker_id": "w4", "worker_email": "w4@la.example", "team_id": "T3",
     "start_date": dt.date(2026, 9, 1), "end_date": None},
])


def addressed(cla=("c9",), allocations=ALLOCATIONS):
    cohort = pd.concat([COHORT, pd.DataFrame([{"child_key": k, "cohort": "cla", "status": "CLA"} for k in cla])])
    flags = evaluate(at(9, 40))
    out = address_flags(flags, allocations=allocations, links=LINKS, record=RECORD, cohort=cohort,
                        recipients_config=RECIPIENTS, rules=RULES, as_of=at(9, 40))
    assert list(out.columns) == DELIVERY_COLUMNS
    child_of = dict(zip(flags["flag_id"], zip(flags["child_key"], flags["rule"])))
    return {(*child_of[r.flag_id], r.recipient_kind, r.recipient_id, r.recipient_address) for r in out.itertuples()}, out


def test_addressing():
    got, out = addressed()
    assert got == {
        ("c1", "unexplained_absence_today", "allocated_worker", "w1", "w1@la.example"),
        ("c2", "unexplained_absence_today", "team_duty_inbox", "T2", "duty-T2@children.example.gov.uk"),
        ("c3", "unexplained_absence_today", "team_duty_inbox", "unallocated",
         "duty-unallocated@children.example.gov.uk"),
        ("c9", "suspension", "allocated_worker", "w4", "w4@la.example"),
        ("c9", "suspension", "virtual_school", "virtual_school", "virtual.school@children.example.gov.uk"),
    }
    assert set(out["channel"]) == {"email"}
    row = out.iloc[0]
    assert row.delivery_id == hashlib.sha256(
        f"{row.flag_id}|{row.recipient_kind}|{row.recipient_id}|email".encode()).hexdigest()


def test_virtual_school_only_for_looked_after_children():
    got, _ = addressed(cla=())
    assert not any(kind == "virtual_school" for _, _, kind, _, _ in got)


def test_worker_without_email_falls_back_to_the_team_duty_inbox():
    no_email = ALLOCATIONS.assign(worker_email=[None, "w2@la.example", "w3@la.example", "w4@la.example"])
    got, _ = addressed(allocations=no_email)
    assert ("c1", "unexplained_absence_today", "team_duty_inbox", "T1", "duty-T1@children.example.gov.uk") in got


def test_addressing_is_idempotent():
    _, first = addressed()
    _, again = addressed()
    pd.testing.assert_frame_equal(first, again)
    assert first["delivery_id"].is_unique


def test_restricted_children_are_never_addressed_and_team_inbox_can_be_overridden():
    flags = pd.DataFrame([{"flag_id": "f7", "child_key": "c7", "rule": "suspension"},
                          {"flag_id": "f2", "child_key": "c2", "rule": "unexplained_absence_today"}])
    recipients = {**RECIPIENTS, "team_duty_inbox": {**RECIPIENTS["team_duty_inbox"], "T2": "t2-duty@la.example"}}
    out = address_flags(flags, allocations=ALLOCATIONS, links=LINKS, record=RECORD, cohort=COHORT,
                        recipients_config=recipients, rules=RULES, as_of=at(9, 40))
    assert list(zip(out["flag_id"], out["recipient_id"], out["recipient_address"])) == [
        ("f2", "T2", "t2-duty@la.example")]
