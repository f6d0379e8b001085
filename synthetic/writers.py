"""Writes the feed files exactly as docs/layouts.md lays them out, and the LA configuration folder.

Headers are spelled here literally from docs/layouts.md (the contract the built-in layouts implement);
tests check them against the layouts. Layout A files are Windows-1252 with CRLF and dd/mm/yyyy
dates; layout B is UTF-8 with a BOM, ISO dates, Morning/Afternoon and an ISO 8601 Updated At;
social care and CAMHS extracts are UTF-8 with ISO dates.
"""
from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterable
from pathlib import Path

from schemas.calendar import SchoolCalendar

from synthetic.attendance import Row
from synthetic.health import Patient
from synthetic.pupils import Enrolment
from synthetic.schools import MIS_A, School
from synthetic.social_care import ScPerson, Worker

MIS_A_ATTENDANCE = ["Adno", "UPN", "Legal Surname", "Legal Forename", "DOB", "Gender", "Reg Group",
                    "Date", "Session", "Mark", "Minutes Late"]
MIS_B_ATTENDANCE = ["Student ID", "UPN", "Last Name", "First Name", "Date of Birth", "Sex", "Year Group",
                    "Registration Form", "Session Date", "Session", "Attendance Mark", "Minutes Late", "Updated At"]
MIS_A_PUPILS = ["Adno", "UPN", "Former UPN", "Legal Surname", "Legal Forename", "Preferred Surname",
                "Preferred Forename", "DOB", "Gender", "Postcode", "Year Group", "Admission Date", "Leaving Date",
                "SEN Provision", "FSM Eligible", "NHS Number", "Destination LAESTAB"]
SC_PERSONS = ["PersonID", "UPN", "NHSNumber", "Forename", "Surname", "DOB", "Sex", "Postcode", "Restricted"]
SC_EPISODES = ["PersonID", "EpisodeID", "EpisodeType", "StartDate", "EndDate", "LegalStatus"]
SC_ALLOCATIONS = ["PersonID", "WorkerID", "WorkerName", "WorkerEmail", "TeamID", "TeamName", "StartDate", "EndDate"]
CAMHS_REFERRALS = ["NHSNumber", "LocalPatientID", "GivenName", "FamilyName", "BirthDate", "Gender", "Postcode",
                   "ReferralID", "ReferralReceivedDate", "ReferralStatus", "DischargeDate", "ServiceTeam",
                   "TeamContact", "PrimaryReasonForReferral"]

_MIS_B_SESSIONS = {"AM": "Morning", "PM": "Afternoon"}


def _uk(day: dt.date | None) -> str:
    return day.strftime("%d/%m/%Y") if day else ""


def _iso(day: dt.date | None) -> str:
    return day.isoformat() if day else ""


def write_csv(path: Path, header: list[str], rows: Iterable[list], *, encoding: str = "utf-8",
              crlf: bool = False) -> int:
    """Write one CSV file; returns the number of data rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding=encoding, newline="") as fh:
        writer = csv.writer(fh, lineterminator="\r\n" if crlf else "\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow(row)
            n += 1
    return n


def attendance_file_name(school: School, day: dt.date, intraday_time: str | None = None) -> str:
    suffix = f"T{intraday_time}" if intraday_time else ""
    return f"{school.laestab}_attendance_{day:%Y%m%d}{suffix}.csv"


def write_attendance(path: Path, school: School, rows: list[Row]) -> int:
    """One attendance extract in the school's layout (mis-a or mis-b)."""
    if school.source_id == MIS_A:
        day_text: dict[dt.date, str] = {}

        def mis_a(r: Row) -> list:
            e = r.enrolment
            text = day_text.get(r.day) or day_text.setdefault(r.day, _uk(r.day))
            return [e.pupil_id, e.upn_on(r.day) or "", e.child.surname, e.child.forename, _uk(e.child.dob),
                    e.child.sex, e.reg_group, text, r.session, r.mark,
                    "" if r.minutes_late is None else r.minutes_late]
        return write_csv(path, MIS_A_ATTENDANCE, map(mis_a, rows), encoding="cp1252", crlf=True)

    def mis_b(r: Row) -> list:
        e = r.enrolment
        return [e.pupil_id, e.upn_on(r.day) or "", e.preferred_surname or e.child.surname,
                e.preferred_forename or e.child.forename, _iso(e.child.dob), e.child.sex, e.year_group,
                e.reg_group, _iso(r.day), _MIS_B_SESSIONS[r.session], r.mark,
                "" if r.minutes_late is None else r.minutes_late, r.updated_at.isoformat(timespec="seconds")]
    return write_csv(path, MIS_B_ATTENDANCE, map(mis_b, rows), encoding="utf-8-sig")


def write_pupils(path: Path, enrolments: list[Enrolment], day: dt.date) -> int:
    """A layout-A roll extract on `day`: everyone admitted by then, leavers with their leaving date."""
    def row(e: Enrolment) -> list:
        left = e.leaving is not None and e.leaving <= day
        former = e.former_upn if e.temp_upn_until is not None and day >= e.temp_upn_until else None
        return [e.pupil_id, e.upn_on(day) or "", former or "", e.child.surname, e.child.forename,
                e.preferred_surname or "", e.preferred_forename or "", _uk(e.child.dob), e.child.sex,
                e.child.postcode, e.year_group, _uk(e.admission), _uk(e.leaving) if left else "", e.sen,
                "Y" if e.fsm else "N", e.nhs or "", (e.destination or "") if left else ""]
    rows = (row(e) for e in enrolments if e.admission <= day)
    return write_csv(path, MIS_A_PUPILS, rows, encoding="cp1252", crlf=True)


def write_social_care(folder: Path, persons: list[ScPerson], workers: dict[str, Worker],
                      day: dt.date) -> dict[str, int]:
    stamp = f"{day:%Y%m%d}"
    counts = {}
    counts[f"sc_persons_{stamp}.csv"] = write_csv(folder / f"sc_persons_{stamp}.csv", SC_PERSONS, (
        [p.person_id, p.upn or "", p.nhs or "", p.forename, p.surname, _iso(p.dob), p.sex, p.postcode,
         "Y" if p.restricted else "N"] for p in persons))
    counts[f"sc_episodes_{stamp}.csv"] = write_csv(folder / f"sc_episodes_{stamp}.csv", SC_EPISODES, (
        [p.person_id, e.episode_id, e.episode_type, _iso(e.start), _iso(e.end), e.legal_status or ""]
        for p in persons for e in p.episodes))

    def alloc(p: ScPerson, a) -> list:
        w = workers[a.worker_id]
        return [p.person_id, w.worker_id, w.name, w.email, w.team_id, w.team_name, _iso(a.start), _iso(a.end)]
    counts[f"sc_allocations_{stamp}.csv"] = write_csv(folder / f"sc_allocations_{stamp}.csv", SC_ALLOCATIONS, (
        alloc(p, a) for p in persons for a in p.allocations))
    return counts


def write_camhs(folder: Path, patients: list[Patient], day: dt.date) -> dict[str, int]:
    name = f"camhs_referrals_{day:%Y%m%d}.csv"
    return {name: write_csv(folder / name, CAMHS_REFERRALS, (
        [p.nhs or "", p.local_patient_id, p.forename, p.surname, _iso(p.dob), p.gender, p.postcode,
         r.referral_id, _iso(r.received), r.status, _iso(r.discharged), r.team, r.contact, r.reason]
        for p in patients for r in p.referrals))}


# -- configuration ---------------------------------------------------------------------------------
def _q(value: str) -> str:
    """A TOML basic string (JSON string escapes are valid TOML)."""
    return json.dumps(value, ensure_ascii=False)


SOURCES_TOML = """# Sources of the synthetic local authority (generated by synthetic.generate).
# `path` is relative to the parent of this configuration folder.

[sources.school_mis_a]
transport = "folder"
path = "inbox/school_mis_a"
expected_by = "10:00"
description = "Schools exporting MIS layout A: nightly and intraday attendance, weekly pupils on roll"
[[sources.school_mis_a.files]]
pattern = "*_attendance_*.csv"
layout = "mis-a"
[[sources.school_mis_a.files]]
pattern = "*_pupils_*.csv"
layout = "mis-a-pupils"

[sources.school_mis_b]
transport = "folder"
path = "inbox/school_mis_b"
expected_by = "10:00"
description = "Schools exporting MIS layout B: attendance only (the roll is taken from it)"
[[sources.school_mis_b.files]]
pattern = "*_attendance_*.csv"
layout = "mis-b"

[sources.social_care]
transport = "folder"
path = "inbox/social_care"
expected_by = "06:00"
description = "Children's social care case-management nightly extract"
[[sources.social_care.files]]
pattern = "sc_persons_*.csv"
layout = "sc-persons"
[[sources.social_care.files]]
pattern = "sc_episodes_*.csv"
layout = "sc-episodes"
[[sources.social_care.files]]
pattern = "sc_allocations_*.csv"
layout = "sc-allocations"

[sources.camhs]
transport = "folder"
path = "inbox/camhs"
expected_by = "06:30"
description = "NHS trust CAMHS referrals nightly extract"
[[sources.camhs.files]]
pattern = "camhs_referrals_*.csv"
layout = "camhs-referrals"
"""


def write_config(folder: Path, schools: list[School], calendar: SchoolCalendar) -> list[Path]:
    """sources.toml, schools.toml and the full calendar.toml (so the pipeline sees what was generated)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sources.toml").write_text(SOURCES_TOML, encoding="utf-8")
    lines = ["# Schools of the synthetic local authority (generated by synthetic.generate).", ""]
    for s in schools:
        lines += [f"[schools.{_q(s.laestab)}]", f"name = {_q(s.name)}", f"urn = {_q(s.urn)}",
                  f"source = {_q(s.source_id)}", 'expected_by = "09:45"', ""]
    (folder / "schools.toml").write_text("\n".join(lines), encoding="utf-8")
    (folder / "calendar.toml").write_text(calendar_toml(calendar), encoding="utf-8")
    return [folder / "sources.toml", folder / "schools.toml", folder / "calendar.toml"]


def _closure(c) -> str:
    return f"{{ start = {c.start.isoformat()}, end = {c.end.isoformat()}, reason = {_q(c.reason)} }}"


def calendar_toml(calendar: SchoolCalendar) -> str:
    """The whole calendar in the format SchoolCalendar.from_mapping reads, with per-school overrides
    holding only what differs from the LA-wide defaults."""
    d = calendar.default
    out = ["# School calendar of the synthetic local authority (generated by synthetic.generate).",
           'timezone = "Europe/London"', f"register_close_minutes = {d.register_close_minutes}", "",
           "[sessions]"]
    out += [f"{k} = {_q(v.strftime('%H:%M'))}" for k, v in d.session_start.items()]
    out.append("")
    for t in calendar.terms:
        out += ["[[terms]]", f"name = {_q(t.name)}", f"start = {t.start.isoformat()}", f"end = {t.end.isoformat()}"]
    for c in d.closures:
        out += ["[[closures]]", f"start = {c.start.isoformat()}", f"end = {c.end.isoformat()}", f"reason = {_q(c.reason)}"]
    for laestab in sorted(calendar.schools):
        times = calendar.schools[laestab]
        out += ["", f"[schools.{_q(laestab)}]"]
        sessions = {k: v for k, v in times.session_start.items() if d.session_start.get(k) != v}
        if sessions:
            out.append("sessions = { " + ", ".join(f"{k} = {_q(v.strftime('%H:%M'))}" for k, v in sessions.items()) + " }")
        if times.register_close_minutes != d.register_close_minutes:
            out.append(f"register_close_minutes = {times.register_close_minutes}")
        own = [c for c in times.closures if c not in d.closures]
        if own:
            out.append("closures = [" + ", ".join(_closure(c) for c in own) + "]")
    return "\n".join(out) + "\n"
