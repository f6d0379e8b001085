"""Flag rules evaluated on today's registers, and the people each flag goes to (docs/dfe-rules.md#missing-marks).

A rule (flag_rules.toml) fires for a child in its cohort who is on roll at a school and, for a
session of `as_of`'s date ("today"):
- carries one of the rule's `marks` (e.g. N or O, or E for a suspension); or
- with `no_mark_after_register_close`, has no mark once that school's register for the session
  has closed (per the school's calendar — a school starting later closes later).

Unknown is never present, and never absent either: a missing mark is only a flag when the school
has reported today (it is in `reporting_schools`) *and* has sent marks for that session for at
least one pupil — a school that has sent nothing, or not yet this afternoon's register, is "no
data", not a flag storm. Pass the whole day's marks, not only the cohort's. A child with a mark at
any of their schools (dual registration) is not missing. `U` (arrived after the register closed)
means the child was seen: it never raises a rule that looks for missing children.
Restricted children never get flags here.

Flags are de-duplicated by flag_id = sha256("child_key|rule|date|session"): re-evaluating gives
the same flags. Evidence is pseudonymous JSON: no name, no identifier.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json

import pandas as pd

from schemas.calendar import SchoolCalendar
from transforms.measures import latest_marks
from transforms.record import as_of_date, between, dates, on_roll, truthy

FLAG_COLUMNS = ["flag_id", "child_key", "rule", "session_date", "session", "laestab", "evidence", "raised_at"]
DELIVERY_COLUMNS = ["flag_id", "recipient_kind", "recipient_id", "recipient_address", "channel", "delivery_id"]
ARRIVED_LATE = "U"
CHANNEL = "email"
UNALLOCATED_TEAM = "unallocated"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def flag_id(child_key: str, rule: str, day: dt.date, session: str) -> str:
    return _sha(f"{child_key}|{rule}|{day.isoformat()}|{session}")


def delivery_id(flag: str, recipient_kind: str, recipient_id: str, channel: str) -> str:
    return _sha(f"{flag}|{recipient_kind}|{recipient_id}|{channel}")


def _rules(rules: dict) -> dict[str, dict]:
    """Accept the rules table itself or the whole flag_rules.toml mapping with a [rules] table."""
    inner = rules.get("rules")
    return inner if isinstance(inner, dict) else rules


def _term_days_missed(measures: pd.DataFrame | None, term_name: str | None) -> dict[tuple, dict]:
    if measures is None or measures.empty or term_name is None:
        return {}
    term = measures[measures["period"] == term_name]
    return {
        (l, p): {"term_days_missed": float(d), "term_unauthorised_days": u / 2.0}
        for l, p, d, u in zip(term["laestab"], term["pupil_ref"], term["days_missed"],
                              term["unauthorised_sessions"])
    }


def evaluate_flags(rules: dict, *, marks: pd.DataFrame, roll: pd.DataFrame, links: pd.DataFrame,
                   record: pd.DataFrame, cohort: pd.DataFrame, calendar: SchoolCalendar,
                   as_of: dt.datetime, reporting_schools: set[str],
                   measures: pd.DataFrame | None = None) -> pd.DataFrame:
    """The flags table for today's sessions (see the module docstring for the rules).

    `measures` (attendance_measures rows) optionally adds the term-to-date days missed to the
    evidence. When a child is on roll at two schools and both would raise the same flag, the
    school with the lower LAESTAB is kept.
    """
    today = as_of_date(as_of)
    term = calendar.term_of(today)
    extra = _term_days_missed(measures, term.name if term else None)
    restricted = set(record.loc[truthy(record["restricted"]), "child_key"]) if not record.empty else set()

    school_links = links[links["source_kind"] == "school"] if not links.empty else links
    key_of = dict(zip(zip(school_links.get("laestab", []), school_links.get("record_ref", [])),
                      school_links.get("child_key", [])))
    enrolments = on_roll(roll, as_of)
    enrolments = sorted((l, p, key_of.get((l, p))) for l, p in zip(enrolments.get("laestab", []),
                                                                   enrolments.get("pupil_ref", [])))

    today_marks: dict[tuple, str] = {}       # (laestab, pupil_ref, session) -> mark
    if not marks.empty:
        todays = latest_marks(marks[between(marks["session_date"], today, today)])
        for l, p, s, m in zip(todays["laestab"], todays["pupil_ref"], todays["session"], todays["mark"]):
            today_marks[(l, p, s)] = m
    sessions_reported = {(l, s) for l, _, s in today_marks}
    marked_children = {(key_of.get((l, p)), s) for l, p, s in today_marks}
    closed = {l: {s for _, s in calendar.closed_registers(l, as_of)} for l in reporting_schools}

    rows = []
    for rule_name, rule in sorted(_rules(rules).items()):
        members = set(cohort.loc[cohort["cohort"] == rule.get("cohort"), "child_key"]) if not cohort.empty else set()
        missing_rule = bool(rule.get("no_mark_after_register_close", False))
        rule_marks = set(rule.get("marks", [])) - ({ARRIVED_LATE} if missing_rule else set())
        for laestab, pupil, child in enrolments:
            if child is None or child not in members or child in restricted:
                continue
            for session in ("AM", "PM"):
                mark = today_marks.get((laestab, pupil, session))
                evidence = {"rule": rule_name, "laestab": laestab, "session_date": today.isoformat(),
                            "session": session}
                if mark is not None and mark in rule_marks:
                    evidence["mark"] = mark
                elif (mark is None and missing_rule and session in closed.get(laestab, ())
                      and (laestab, session) in sessions_reported
                      and (child, session) not in marked_children):
                    evidence["mark"] = "no mark"
                    evidence["register_close"] = calendar.register_close(laestab, today, session).isoformat()
                else:
                    continue
                evidence.update(extra.get((laestab, pupil), {}))
                rows.append({
                    "flag_id": flag_id(child, rule_name, today, session), "child_key": child,
                    "rule": rule_name, "session_date": today, "session": session, "laestab": laestab,
                    "evidence": json.dumps(evidence, sort_keys=True), "raised_at": as_of,
                })
    out = pd.DataFrame(rows, columns=FLAG_COLUMNS).drop_duplicates("flag_id", keep="first")
    return out.sort_values(["child_key", "rule", "session"], ignore_index=True)


def _open_on(frame: pd.DataFrame, day: dt.date) -> pd.Series:
    start, end = dates(frame["start_date"]), dates(frame["end_date"])
    return pd.Series([s is not None and s <= day and (e is None or e >= day) for s, e in zip(start, end)],
                     index=frame.index, dtype=bool)


def _duty_inbox(recipients_config: dict, team_id: str) -> str | None:
    inbox = recipients_config.get("team_duty_inbox", {})
    pattern = inbox.get(team_id) or inbox.get("default")
    return pattern.format(team_id=team_id) if pattern else None


def _worker_recipient(person_ref, allocations: pd.DataFrame, day: dt.date,
                      recipients_config: dict) -> tuple[str, str, str | None]:
    """The child's allocated worker on `day`, else the duty inbox of their latest team."""
    mine = allocations[allocations["person_ref"] == person_ref] if person_ref is not None and not allocations.empty else allocations.iloc[0:0]
    if not mine.empty:
        mine = mine.assign(_start=dates(mine["start_date"])).sort_values(["_start", "worker_id"])
        current = mine[_open_on(mine, day) & mine["worker_email"].notna()]
        if not current.empty:
            latest = current.iloc[-1]
            return "allocated_worker", str(latest["worker_id"]), str(latest["worker_email"])
        started = mine[[s is not None and s <= day for s in mine["_start"]]]
        teams = started["team_id"].dropna() if "team_id" in started else []
        if len(teams):
            team = str(teams.iloc[-1])
            return "team_duty_inbox", team, _duty_inbox(recipients_config, team)
    return "team_duty_inbox", UNALLOCATED_TEAM, _duty_inbox(recipients_config, UNALLOCATED_TEAM)


def address_flags(flags: pd.DataFrame, *, allocations: pd.DataFrame, links: pd.DataFrame,
                  record: pd.DataFrame, cohort: pd.DataFrame, recipients_config: dict,
                  rules: dict, as_of: dt.datetime) -> pd.DataFrame:
    """Who each flag goes to, by the recipient kinds its rule names.

    - `allocated_worker`: the child's allocation open on `as_of`'s date (the most recently started
      one with an email address). With none, the flag goes to the `team_duty_inbox` of the team of
      the child's most recent allocation (the pattern under [team_duty_inbox], a team's own entry
      first, else `default`, with {team_id} filled in), or of the team 'unallocated'.
    - `virtual_school_if_cla`: the Virtual School, when the child is in the `cla` cohort;
      `virtual_school`: the Virtual School always.
    Restricted children are never addressed. delivery_id = sha256("flag_id|kind|id|channel").
    """
    rule_table = _rules(rules)
    day = as_of_date(as_of)
    person_of = dict(zip(record["child_key"], record["person_ref"])) if not record.empty else {}
    if not links.empty:
        sc = links[links["source_kind"] == "social_care"].sort_values("record_ref")
        for child, ref in zip(sc["child_key"], sc["record_ref"]):
            if person_of.get(child) is None or pd.isna(person_of.get(child)):
                person_of[child] = ref
    restricted = set(record.loc[truthy(record["restricted"]), "child_key"]) if not record.empty else set()
    cla = set(cohort.loc[cohort["cohort"] == "cla", "child_key"]) if not cohort.empty else set()
    school = recipients_config.get("virtual_school", {}).get("address")

    rows = []
    for fid, child, rule_name in zip(flags["flag_id"], flags["child_key"], flags["rule"]):
        if child in restricted:
            continue
        rule = rule_table.get(rule_name)
        if rule is None:
            raise ValueError(f"flag rule {rule_name!r} is not in the flag rules configuration")
        for kind in rule.get("recipients", []):
            if kind == "allocated_worker":
                person = person_of.get(child)
                person = None if person is None or pd.isna(person) else person
                recipient = _worker_recipient(person, allocations, day, recipients_config)
            elif kind == "virtual_school" or (kind == "virtual_school_if_cla" and child in cla):
                recipient = ("virtual_school", "virtual_school", school)
            elif kind == "virtual_school_if_cla":
                continue
            else:
                raise ValueError(f"flag rule {rule_name!r} names unknown recipient kind {kind!r}")
            rkind, rid, address = recipient
            rows.append({"flag_id": fid, "recipient_kind": rkind, "recipient_id": rid,
                         "recipient_address": address, "channel": CHANNEL,
                         "delivery_id": delivery_id(fid, rkind, rid, CHANNEL)})
    out = pd.DataFrame(rows, columns=DELIVERY_COLUMNS).drop_duplicates("delivery_id")
    return out.sort_values(["flag_id", "recipient_kind", "recipient_id"], ignore_index=True)
