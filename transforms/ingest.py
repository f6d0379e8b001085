"""Ingest one delivered file: read it through its layout, pseudonymise, validate, reconcile.

`ingest_file` is pure: bytes and configuration in, a staged frame (no plaintext identity), the
rows to quarantine (raw payloads, for the caller to encrypt) and data-quality issues out. It never
drops a row silently: rows_read == rows staged + rows quarantined.

Decisions:
- Rows of one file that share a staged key (the same pupil, date and session; the same pupil;
  person; episode; allocation; referral) but differ are all quarantined, "conflicting ... in one
  file": nothing in a file says which of the two is right, and a wrong mark can raise or hide a
  safeguarding flag. Exact duplicate rows keep the first and quarantine the others.
- One exception: marks of one file for the same pupil, date and session whose `updated_at` (the
  MIS's own edit time, layouts that carry it) are all given and differ are a register's history:
  the latest is staged and the earlier ones are *superseded* — counted, not quarantined (the
  school corrected the mark). For every file rows read = staged + superseded + quarantined.
- An attendance file also yields the school's roll (`extra["staged_pupils"]`) when its layout
  carries identity (UPN, names or date of birth): one row per pupil not yet on the stored roll,
  from the row for the latest session, SEN provision and FSM eligibility unknown (null). A pupil the roll cannot take is
  recorded as a data-quality issue, never a quarantined row: the marks themselves were read.
- `recorded_at` of a mark is the row's `updated_at` when the layout has it, else the extract time
  from the file name (Europe/London; a nightly file without a time counts as 18:00 that day),
  else the time the file was received.
- A school file (attendance, pupils) whose LAESTAB (from the file name) is not in schools.toml is
  refused whole, every row counted and quarantined: "school 1234567 is not in schools.toml; add it
  or fix the file name". Its marks would otherwise bring children into the record under a school
  nobody configured (a mistyped file name, another LA's school), and no freshness, reporting or
  recipient rule knows it; refusing the file keeps it reconcilable, and once the school is added
  (or the name fixed) the landed file is re-staged. The check is on when schools.toml lists at
  least one school (`schools` given and not empty): a deployment that lists none has not started.
- A leaving date before the admission date is a data-quality issue; the row is staged as sent and
  the leaving date is ignored when deciding who is on roll (transforms/record.py `on_roll`): one
  of the two dates is wrong, and taking the pupil off roll on a wrong one would hide them.
- Dates of birth, placeholder names, formula values and line breaks: transforms/quality.py.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from schemas.codes import CodeTable
from schemas.config import Layout
from schemas.staged import coerce_staged, empty_staged_frame
from sharing.keys import KeyRing
from transforms.normalise import LONDON, london_time
from transforms.pseudonymise import (
    CAMHS_PATIENT_NS, SC_PERSON_NS, identity_columns, per_value, pupil_ref, record_ref, without_identity,
)
from transforms.quality import QualityRules
from transforms.read import DataQualityIssue, QuarantinedRow, ReadResult, read_layout
from transforms.validate import validate_staged

__all__ = ["DataQualityIssue", "IngestError", "IngestResult", "QuarantinedRow", "FEED_TABLES", "ingest_file"]

FEED_TABLES = {
    "attendance": "staged_marks",
    "pupils": "staged_pupils",
    "sc_persons": "staged_sc_persons",
    "sc_episodes": "staged_sc_episodes",
    "sc_allocations": "staged_sc_allocations",
    "camhs_referrals": "staged_camhs_referrals",
}

# The staged key of each feed in canonical fields, and how a reason names it.
_KEYS = {
    "attendance": (("school_pupil_id", "session_date", "session"), "pupil, date and session"),
    "pupils": (("school_pupil_id",), "pupil"),
    "sc_persons": (("person_id",), "person"),
    "sc_episodes": (("episode_id",), "episode"),
    "sc_allocations": (("person_id", "worker_id", "start_date"), "person, worker and start date"),
    "camhs_referrals": (("referral_id",), "referral"),
}
SCHOOL_FEEDS = frozenset({"attendance", "pupils"})     # a school's file: its LAESTAB is in the file name
_ROLL_IDENTITY = ("upn", "surname", "forename", "dob")
_ROLL_FIELDS = ("school_pupil_id", "upn", "surname", "forename", "dob", "sex", "year_group", "reg_group")


class IngestError(RuntimeError):
    """An unexpected failure inside ingest; the message names the file and the error type only."""


@dataclass
class IngestResult:
    table: str                  # staged table name, e.g. "staged_marks"
    staged: pd.DataFrame        # columns exactly those of schemas.tables.<table>
    quarantined: list[QuarantinedRow]
    issues: list[DataQualityIssue]
    rows_read: int              # == len(staged) + rows_superseded + len({q.row_number for q in quarantined ...})
    file_error: str | None      # whole file refused (every row it could split is quarantined too)
    extra: dict[str, pd.DataFrame] = field(default_factory=dict)   # e.g. the roll of an attendance file
    rows_superseded: int = 0    # earlier marks of the same session in this file, replaced by a later one


def ingest_file(data: bytes, *, file_name: str, source_id: str, file_id: str, layout: Layout,
                codes: CodeTable, keys: KeyRing, received_at: dt.datetime,
                schools: Collection[str] | None = None, quality: QualityRules | None = None,
                on_roll: Callable[[str], Collection[str]] | None = None) -> IngestResult:
    """Read, pseudonymise and validate one file; see the module docstring for the rules.

    `schools`: the LAESTABs of schools.toml (None or empty: not checked); `quality`: the
    data-quality rules (None: the built-in data_quality.toml); `on_roll`: the pupil_refs already
    on a school's stored roll, by LAESTAB (an attendance file's roll then holds only new pupils).
    """
    try:
        return _ingest(data, file_name=file_name, source_id=source_id, file_id=file_id, layout=layout,
                       codes=codes, keys=keys, received_at=received_at, schools=schools, quality=quality,
                       on_roll=on_roll)
    except Exception as exc:    # the original may quote a cell: keep only its type
        raise IngestError(f"{source_id} file {file_name}: internal error while ingesting "
                          f"({type(exc).__name__})") from None


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment.replace(tzinfo=dt.timezone.utc) if moment.tzinfo is None else moment.astimezone(dt.timezone.utc)


def _file_context(layout: Layout, file_name: str, received_at: dt.datetime) -> tuple[dict, str | None]:
    """laestab, extract_date and extract moment from the file name; or a reason to refuse the file."""
    groups = layout.parse_filename(file_name)
    needs_school = layout.feed in SCHOOL_FEEDS
    if groups is None:
        if needs_school:
            return {}, f"file name does not match the pattern of layout {layout.name}"
        groups = {}
    ctx: dict = {"laestab": groups.get("laestab")}
    if needs_school and not ctx["laestab"]:
        return ctx, f"file name gives no LAESTAB (layout {layout.name})"
    received = _utc(received_at)
    ctx["extract_date"] = received.astimezone(LONDON).date()
    ctx["extract_at"] = received
    if groups.get("extract_date"):
        try:
            day = dt.datetime.strptime(groups["extract_date"], "%Y%m%d").date()
            time = groups.get("extract_time")
            if time and not (len(time) == 4 and time.isdigit() and int(time[:2]) < 24 and int(time[2:]) < 60):
                raise ValueError
            ctx["extract_date"], ctx["extract_at"] = day, london_time(day, time)
        except ValueError:
            return ctx, "file name holds an impossible extract date or time"
    return ctx, None


def _refuse_rows(read: ReadResult, table: str, reason: str, raw: bytes, fld: str | None = None) -> IngestResult:
    quarantined = [QuarantinedRow(None, fld, reason, raw)]
    quarantined += [QuarantinedRow(n, None, f"file not read: {reason}", read.payloads.get(n, b""))
                    for n in range(1, read.rows_read + 1)]
    return IngestResult(table, empty_staged_frame(table), quarantined, [], read.rows_read, reason)


def _superseded(group: pd.DataFrame) -> list[int]:
    """Row numbers of a group of marks for one session that a later edit in the same file replaced:
    all but the latest, when every row carries a distinct `updated_at`; else none (a conflict)."""
    if "updated_at" not in group or group["updated_at"].isna().any():
        return []
    edited = pd.to_datetime(group["updated_at"], utc=True)
    if edited.nunique() < len(group):
        return []
    latest = edited.idxmax()
    return sorted(int(n) for i, n in group["row_number"].items() if i != latest)


def _conflicts(frame: pd.DataFrame, feed: str) -> tuple[dict[int, tuple[str, str]], set[int]]:
    """(row number -> (field, reason) for rows sharing a staged key with a different row, the row
    numbers of marks superseded by a later edit of the same session in the file)."""
    key_fields, label = _KEYS[feed]
    out: dict[int, tuple[str, str]] = {}
    superseded: set[int] = set()
    if frame.empty:
        return out, superseded
    shared = frame[frame.duplicated(list(key_fields), keep=False)]   # most files have none
    if shared.empty:
        return out, superseded
    for _, group in shared.groupby(list(key_fields), dropna=False, sort=False):
        if len(group) < 2:
            continue
        if feed == "attendance" and (earlier := _superseded(group)):
            superseded.update(earlier)
            continue
        rows = sorted(int(n) for n in group["row_number"])
        listed = ", ".join(map(str, rows))
        if feed == "attendance" and group["mark"].nunique(dropna=False) > 1:
            reason, fld = f"conflicting marks in one file for the same {label} (rows {listed})", "mark"
        else:
            reason, fld = f"conflicting rows in one file for the same {label} (rows {listed})", key_fields[0]
        for n in rows:
            out[n] = (fld, reason)
    return out, superseded


def _provenance(df: pd.DataFrame, frame: pd.DataFrame, source_id: str, file_id: str) -> pd.DataFrame:
    df["source_id"] = source_id
    df["file_id"] = file_id
    df["row_number"] = frame["row_number"].astype(int).to_numpy()
    return df


def _stage_frame(feed: str, frame: pd.DataFrame, ctx: dict, keys: KeyRing, source_id: str,
                 file_id: str) -> tuple[pd.DataFrame, list[DataQualityIssue]]:
    """The staged rows (table columns, no plaintext identity) of a clean canonical frame."""
    tk = keys.token_key
    refs = ctx.setdefault("pupil_refs", {})    # the file's marks and its roll share pupil tokens
    issues: list[DataQualityIssue] = []
    out = pd.DataFrame(index=frame.index)
    if feed == "attendance":
        out["laestab"] = ctx["laestab"]
        out["pupil_ref"] = per_value(lambda v: pupil_ref(tk, ctx["laestab"], v), frame["school_pupil_id"], refs)
        for c in ("session_date", "session", "mark", "category", "minutes_late"):
            out[c] = frame[c].to_numpy()
        out["recorded_at"] = [u if u is not None and not pd.isna(u) else ctx["extract_at"]
                              for u in frame["updated_at"]]
    elif feed in {"pupils", "sc_persons", "camhs_referrals"}:
        ids, issues = identity_columns(frame, keys, on=ctx.get("extract_date"), rules=ctx.get("quality"))
        if feed == "pupils":
            issues += _leaving_before_admission(frame)
        if feed == "pupils":
            out["laestab"] = ctx["laestab"]
            out["pupil_ref"] = per_value(lambda v: pupil_ref(tk, ctx["laestab"], v), frame["school_pupil_id"], refs)
        elif feed == "sc_persons":
            out["person_ref"] = per_value(lambda v: record_ref(tk, SC_PERSON_NS, v), frame["person_id"])
        else:
            out["patient_ref"] = per_value(lambda v: record_ref(tk, CAMHS_PATIENT_NS, v), frame["local_patient_id"])
        out = pd.concat([out, ids], axis=1)
        rest = without_identity(frame)
        for c in rest.columns:
            if c not in out.columns:
                out[c] = rest[c].to_numpy()
        if feed == "pupils":
            out["extract_date"] = ctx["extract_date"]
        if feed == "sc_persons":
            out["restricted"] = [bool(v) if v is not None and not pd.isna(v) else False for v in frame["restricted"]]
    else:   # sc_episodes, sc_allocations: no identity beyond the person id
        out["person_ref"] = per_value(lambda v: record_ref(tk, SC_PERSON_NS, v), frame["person_id"])
        rest = without_identity(frame)
        for c in rest.columns:
            out[c] = rest[c].to_numpy()
    return _provenance(out, frame, source_id, file_id), issues


def _leaving_before_admission(frame: pd.DataFrame) -> list[DataQualityIssue]:
    if "leaving_date" not in frame.columns or "admission_date" not in frame.columns:
        return []
    return [DataQualityIssue(int(n), "leaving_date", "leaving date is before the admission date; "
                                                     "ignored when deciding who is on roll")
            for n, a, l in zip(frame["row_number"], frame["admission_date"], frame["leaving_date"])
            if isinstance(a, dt.date) and isinstance(l, dt.date) and l < a]


def _roll_from_attendance(read: ReadResult, layout: Layout, ctx: dict, keys: KeyRing, source_id: str,
                          file_id: str, on_roll: Collection[str]) -> tuple[pd.DataFrame | None, list[DataQualityIssue]]:
    """One staged_pupils row per pupil of an attendance file (SEN and FSM unknown), for pupils not
    already on the school's stored roll (`on_roll`: their pupil_refs). The roll only ever gains new
    pupils from attendance files, so a known pupil's identity is not tokenised, encrypted and
    checked again on every day's file."""
    if not any(f in layout.columns for f in _ROLL_IDENTITY):
        return None, []
    usable = np.array([not set(failed) & set(_ROLL_FIELDS) for failed in read.partial["_failed"]], dtype=bool)
    partial = read.partial.loc[usable]
    rows = pd.concat([read.frame, partial[list(read.frame.columns)]], ignore_index=True)
    rows["row_number"] = rows["row_number"].astype("int64")
    if rows.empty:
        return coerce_staged("staged_pupils", pd.DataFrame()), []
    issues: list[DataQualityIssue] = []
    rows = rows.sort_values(["session_date", "row_number"], na_position="first")
    rows = rows[rows["school_pupil_id"].notna()]
    # Pupils in order of their first row; each pupil's roll row is its last (latest session) row.
    codes, _ = pd.factorize(rows["school_pupil_id"], sort=False)
    last = pd.Series(np.arange(len(rows))).groupby(codes, sort=True).max().to_numpy()
    first_identity: dict[int, tuple] = {}
    differs: set[int] = set()
    identities = zip(*(map(str, rows[f].tolist()) for f in _ROLL_IDENTITY))
    for code, identity in zip(codes.tolist(), identities):
        if first_identity.setdefault(code, identity) != identity:
            differs.add(code)
    row_numbers = rows["row_number"].to_numpy()
    for code in sorted(differs):
        issues.append(DataQualityIssue(int(row_numbers[last[code]]), "school_pupil_id",
                                       "identity differs between rows for the same pupil; "
                                       "the row for the latest session was used for the roll"))
    roll = rows.iloc[last].reset_index(drop=True)
    if on_roll:
        refs = per_value(lambda v: pupil_ref(keys.token_key, ctx["laestab"], v), roll["school_pupil_id"],
                         ctx.setdefault("pupil_refs", {}))
        roll = roll[[ref not in on_roll for ref in refs]].reset_index(drop=True)
        if roll.empty:
            return None, issues
    roll_input = roll[[c for c in roll.columns if c in set(_ROLL_FIELDS) | {"row_number"}]]
    staged, id_issues = _stage_frame("pupils", roll_input, ctx, keys, source_id, file_id)
    staged["sen_provision"] = None
    staged["fsm_eligible"] = None
    valid, failures = validate_staged("staged_pupils", staged)
    issues += id_issues
    issues += [DataQualityIssue(q.row_number or 0, q.field or "", f"pupil left off the roll: {q.reason}")
               for q in failures]
    return valid, issues


def _ingest(data: bytes, *, file_name: str, source_id: str, file_id: str, layout: Layout, codes: CodeTable,
            keys: KeyRing, received_at: dt.datetime, schools: Collection[str] | None,
            quality: QualityRules | None, on_roll: Callable[[str], Collection[str]] | None) -> IngestResult:
    table = FEED_TABLES[layout.feed]
    read = read_layout(data, layout, codes)
    if read.file_error:
        return IngestResult(table, empty_staged_frame(table), read.quarantined, [], read.rows_read,
                            read.file_error)
    ctx, name_problem = _file_context(layout, file_name, received_at)
    if name_problem:
        return _refuse_rows(read, table, name_problem, b"")
    if schools and layout.feed in SCHOOL_FEEDS and ctx["laestab"] not in schools:
        return _refuse_rows(read, table, f"school {ctx['laestab']} is not in schools.toml; add it or fix the file name",
                            b"", "laestab")
    ctx["quality"] = quality

    quarantined = list(read.quarantined)
    conflicts, superseded = _conflicts(read.frame, layout.feed)
    for n, (fld, reason) in sorted(conflicts.items()):
        quarantined.append(QuarantinedRow(n, fld, reason, read.payloads.get(n, b"")))
    clean = read.frame[~read.frame["row_number"].isin(list(conflicts) + list(superseded))].reset_index(drop=True)

    staged, issues = _stage_frame(layout.feed, clean, ctx, keys, source_id, file_id)
    valid, failures = validate_staged(table, staged)
    for q in failures:
        quarantined.append(QuarantinedRow(q.row_number, q.field, q.reason, read.payloads.get(q.row_number, b"")))

    extra: dict[str, pd.DataFrame] = {}
    roll_rows: set[int] = set()
    if layout.feed == "attendance":
        known = on_roll(ctx["laestab"]) if on_roll is not None else ()
        roll, roll_issues = _roll_from_attendance(read, layout, ctx, keys, source_id, file_id, known)
        if roll is not None:
            extra["staged_pupils"] = roll
            roll_rows = {i.row_number for i in roll_issues}
            issues += roll_issues
    kept = set(int(n) for n in valid["row_number"]) | roll_rows
    all_issues = [i for i in read.issues + issues if i.row_number in kept]
    return IngestResult(table, valid.reset_index(drop=True), quarantined, all_issues, read.rows_read, None, extra,
                        rows_superseded=len(superseded))
