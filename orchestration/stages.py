"""Each stage of the data's way as one function over a TetherContext.

Dagster assets (orchestration/assets.py) and the CLI call these; they compose connectors (I/O)
with transforms (pure) and return the figures a data team wants to see, with no identity in them.
"""
from __future__ import annotations

import datetime as dt
import fnmatch
import json
from collections import Counter
from collections.abc import Callable

import pandas as pd
from sqlalchemy import and_, bindparam, delete

from connectors import outbox
from connectors.arrivals import figures as unlanded_figures
from connectors.attendance import marks_between, refresh_weeks, school_weeks, session_sums, stage_marks
from connectors.folder import survey_folder
from connectors.landing import refused_whole
from connectors.unlanded import in_flight_stale_seconds, record_unlanded
from schemas import tables as t
from schemas.calendar import LONDON
from schemas.config import Source
from sharing.crypto import decrypt_json
from sharing.policy import display_name, filter_payload
from transforms.cohorts import cohorts as derive_cohorts
from transforms.consecutive import consecutive_runs, run_marks
from transforms.flags import address_flags, evaluate_flags
from transforms.ingest import QuarantinedRow, ingest_file
from transforms.quality import QualityRules
from transforms.statutory.ingest import READERS, ingest_return
from transforms.statutory.merge import staged_social_care
from transforms.linkage import link_with_conflicts
from transforms.measures import measures_from_sums, term_periods
from transforms.person_references import rows_without_person
from transforms.record import child_record

from orchestration.remote_sources import land_remote_source
from orchestration.resources import TetherContext

NEWER_COLUMN = {"staged_marks": "recorded_at", "staged_pupils": "extract_date"}
FILES_PER_TRANSACTION = 10   # staging writes this many files per store transaction


# --- landing ---------------------------------------------------------------------------------

def land_source(ctx: TetherContext, source: Source) -> dict:
    """Bring complete files from the source into landing (encrypted, checksummed, once)."""
    if source.transport != "folder":
        return land_remote_source(ctx, source)
    folder = ctx.source_folder(source.options.get("path", source.source_id))
    if not folder.is_dir():
        raise FileNotFoundError(
            f"source {source.source_id}: landing folder {folder} does not exist; create it or fix "
            f"`path` in sources.toml")
    patterns = [f.pattern for f in source.files]
    now = dt.datetime.now(dt.timezone.utc)
    survey = survey_folder(folder, patterns, stable_seconds=float(source.options.get("stable_seconds", 0)),
                           now=now.timestamp(), stale_seconds=in_flight_stale_seconds(source))
    new = seen = 0
    for path in survey.complete:
        landed = ctx.landing.receive(source.source_id, path.name, path.read_bytes(),
                                     layout=source.layout_for(path.name), received_at=now)
        new += landed.is_new
        seen += not landed.is_new
    record_unlanded(ctx.store, source.source_id, survey.unlanded, now)
    return {"files_in_folder": survey.files_seen, "files_new": new, "files_already_landed": seen,
            "files_done_markers": survey.done_markers, **unlanded_figures(survey.unlanded)}


# --- staging ---------------------------------------------------------------------------------

def _existing_keys(ctx: TetherContext, table, df: pd.DataFrame) -> set[tuple]:
    """Stored primary keys that could equal a key of `df`: only rows sharing the value of the key's
    first column (the school of a roll, the person of a return) are read, not the whole table."""
    pk = [c.name for c in table.primary_key.columns]
    candidates = list(dict.fromkeys(df[pk[0]].tolist()))
    keys: set[tuple] = set()
    for start in range(0, len(candidates), 500):     # well under SQLite's bound-parameter limit
        stored = ctx.store.read(table, where=table.c[pk[0]].in_(candidates[start:start + 500]), columns=pk)
        keys.update(map(tuple, stored[pk].astype(str).to_numpy()))
    return keys


def _write_staged(ctx: TetherContext, table_name: str, df: pd.DataFrame, *, only_new: bool = False) -> int:
    if df.empty:
        return 0
    if table_name == "staged_marks":
        written = stage_marks(ctx.store, df, newer_column=NEWER_COLUMN[table_name])
        _record_registers(ctx, df)
        return written
    table = t.metadata.tables[table_name]
    if only_new:
        pk = [c.name for c in table.primary_key.columns]
        existing = _existing_keys(ctx, table, df)
        keys = map(tuple, df[pk].astype(str).to_numpy())
        df = df[[k not in existing for k in keys]]
        if df.empty:
            return 0
    return ctx.store.upsert(table, df, newer_column=NEWER_COLUMN.get(table_name))


def _record_registers(ctx: TetherContext, marks: pd.DataFrame) -> None:
    """Note which school registers (school, date, session) these marks belong to, so freshness
    reads a small table instead of scanning every mark."""
    if marks.empty:
        return
    registers = (marks.groupby(["laestab", "session_date", "session"], sort=True)["recorded_at"].max()
                 .reset_index().rename(columns={"recorded_at": "last_recorded_at"}))
    ctx.store.upsert(t.school_registers, registers, newer_column="last_recorded_at")


def _on_roll(ctx: TetherContext, laestab: str, file_id: str, rolled: dict[str, set[str]] | None) -> set[str]:
    """The pupil_refs on a school's stored roll, but for rows a file (being re-staged) put there,
    and those `rolled` there by files not yet written."""
    pupils = t.staged_pupils.c
    roll = ctx.store.read(t.staged_pupils, where=and_(pupils.laestab == laestab, pupils.file_id != file_id),
                          columns=["pupil_ref"])
    return set(roll["pupil_ref"]) | (rolled or {}).get(laestab, set())


def stage_file(ctx: TetherContext, source: Source, entry: dict) -> dict:
    """Read one landed file through its layout (or statutory reader), validate, pseudonymise and
    stage it. Returns the file's reconciliation: rows read = rows staged + superseded + quarantined."""
    return _ingest_landed(ctx, source, entry)()


def _ingest_landed(ctx: TetherContext, source: Source, entry: dict, *, restage: bool = False,
                   rolled: dict[str, set[str]] | None = None) -> Callable[[], dict]:
    """Ingest one landed file (no store writes yet); returns the function that stages the result,
    its staged rows, quarantine, issues and manifest status in one transaction, and reconciles.

    With `restage` the file is read again under the current configuration (its layout is the one
    sources.toml names for it now) and what the earlier reading left is brought up to date: see
    `_restage_write`. `rolled`: pupil_refs, by LAESTAB, that files ingested before this one in the
    same transaction put on the roll (not stored yet); this file's are added.
    """
    file_id, file_name = entry["file_id"], entry["file_name"]
    if restage:
        layout_name = source.layout_for(file_name) or entry.get("layout")
    else:
        layout_name = entry.get("layout") or source.layout_for(file_name)
    now = dt.datetime.now(dt.timezone.utc)
    if not layout_name:
        reason = f"no layout configured for this file name in source {source.source_id}"
        raw = ctx.landing.read(file_id)
        refused = [QuarantinedRow(None, None, reason, raw)]

        def refuse() -> dict:
            with ctx.store.begin():
                if restage:
                    return _restage_write(ctx, source, entry, layout=None, result=None, quarantined=refused,
                                          issues=[], staged_rows=set(), bad_rows=set(), error=reason, at=now)
                ctx.landing.quarantine(source_id=source.source_id, file_id=file_id, file_name=file_name,
                                       rows=refused, at=now)
                ctx.landing.mark_failed(file_id, reason)
            return {"rows_read": 0, "rows_staged": 0, "rows_superseded": 0, "rows_quarantined": 0,
                    "reasons": Counter({reason: 1})}
        return refuse
    data = ctx.landing.read(file_id)
    statutory = layout_name in READERS
    if statutory:
        result = ingest_return(data, reader=layout_name, file_name=file_name, source_id=source.source_id,
                               file_id=file_id, keys=ctx.keys)
    else:
        result = ingest_file(data, file_name=file_name, source_id=source.source_id, file_id=file_id,
                             layout=ctx.config.layout(layout_name), codes=ctx.config.codes, keys=ctx.keys,
                             received_at=entry["received_at"], schools=set(ctx.config.schools),
                             quality=QualityRules.from_mapping(ctx.config.data_quality),
                             on_roll=lambda laestab: _on_roll(ctx, laestab, file_id, rolled))
        if rolled is not None and len(roll := result.extra.get("staged_pupils", ())):
            rolled.setdefault(str(roll["laestab"].iloc[0]), set()).update(roll["pupil_ref"])
    staged_rows = set(result.staged["row_number"].astype(int)) if len(result.staged) else set()
    if statutory:
        for extra in result.extra.values():
            staged_rows |= set(extra["row_number"].astype(int))
    bad_rows = {q.row_number for q in result.quarantined if q.row_number is not None} - staged_rows

    def write() -> dict:
        with ctx.store.begin():
            if restage:
                return _restage_write(ctx, source, entry, layout=layout_name, result=result,
                                      quarantined=result.quarantined, issues=result.issues,
                                      staged_rows=staged_rows, bad_rows=bad_rows, error=result.file_error, at=now)
            _write_result(ctx, result, statutory=statutory)
            ctx.landing.quarantine(source_id=source.source_id, file_id=file_id, file_name=file_name,
                                   rows=result.quarantined, at=now)
            ctx.landing.record_issues(source_id=source.source_id, file_id=file_id, file_name=file_name,
                                      issues=result.issues, at=now)
            ctx.landing.mark_staged(file_id, rows_read=result.rows_read, rows_staged=len(staged_rows),
                                    rows_superseded=result.rows_superseded, rows_quarantined=len(bad_rows))
            if result.file_error:   # the file was refused whole; its rows (if any could be split) are quarantined
                ctx.landing.mark_failed(file_id, result.file_error)
        return {"rows_read": result.rows_read, "rows_staged": len(staged_rows),
                "rows_superseded": result.rows_superseded, "rows_quarantined": len(bad_rows),
                "reasons": Counter(_reason_class(q.reason) for q in result.quarantined)}
    return write


def _write_result(ctx: TetherContext, result, *, statutory: bool) -> int:
    """The staged rows of one ingested file, its extra tables (e.g. the roll) included; returns
    the number of rows inserted or changed."""
    # A statutory return never overwrites the case-management extract's person (the extract wins).
    written = _write_staged(ctx, result.table, result.staged,
                            only_new=statutory and result.table == "staged_sc_persons")
    for table_name, extra in result.extra.items():
        written += _write_staged(ctx, table_name, extra, only_new=table_name in ("staged_pupils", "staged_sc_persons"))
    return written


def _reason_class(reason: str) -> str:
    """A reason without row-specific detail, for counting in summaries."""
    return reason.split(" (row")[0].split(": ")[0][:120]


def stage_source(ctx: TetherContext, source: Source) -> dict:
    """Stage every landed file of the source not yet staged, oldest first."""
    totals = Counter()
    reasons: Counter = Counter()
    pending = sorted(ctx.landing.pending(source.source_id), key=lambda e: (e["file_name"], e["received_at"]))
    for start in range(0, len(pending), FILES_PER_TRANSACTION):
        # Ingest a few files (no lock held), then write them in one transaction: fewer commits.
        writes, failure, rolled = [], None, {}
        for entry in pending[start:start + FILES_PER_TRANSACTION]:
            try:
                writes.append(_ingest_landed(ctx, source, entry, rolled=rolled))
            except Exception as exc:    # the files before it are still staged, then it is raised
                failure = exc
                break
        with ctx.store.begin():
            outs = [write() for write in writes]
        for out in outs:
            totals["files"] += 1
            for k in ("rows_read", "rows_staged", "rows_superseded", "rows_quarantined"):
                totals[k] += out[k]
            reasons.update(out["reasons"])
        if failure is not None:
            raise failure
    return {**{k: int(v) for k, v in totals.items()}, "quarantine_reasons": dict(reasons.most_common(10))}


# --- re-staging --------------------------------------------------------------------------------

def _key(row) -> tuple:
    """A quarantine row or data-quality issue as (row, field, text), stored or freshly read."""
    get = row.get if isinstance(row, dict) else lambda name: getattr(row, name, None)
    text = get("reason") if get("reason") is not None else get("issue")
    number = get("row_number")
    return (None if number is None or pd.isna(number) else int(number), get("field") or None, text)


def _from_linkage(issue: dict) -> bool:
    """A data-quality issue recorded by linkage (an identifier shared by records that disagree),
    not by reading the file: `link` keeps those up to date, re-staging does not."""
    return issue.get("field") in IDENTIFIER_FIELD.values() and " shared with " in (issue.get("issue") or "")


def _drop_stale_staged(ctx: TetherContext, result, file_id: str) -> int:
    """Remove staged rows this file put in the store that its new reading no longer yields (the
    row is now quarantined, or the file refused): the store holds only the rows in force. Rows
    a later file has since replaced carry that file's id and are left alone."""
    frames = {} if result is None else {result.table: result.staged, **result.extra}
    removed = 0
    for table in t.metadata.sorted_tables:
        if not table.name.startswith("staged_"):
            continue
        pk = [c.name for c in table.primary_key.columns]
        stored = ctx.store.read(table, where=table.c.file_id == file_id, columns=pk)
        if stored.empty:
            continue
        fresh = frames.get(table.name)
        keep = set(map(tuple, fresh[pk].astype(str).to_numpy())) if fresh is not None and len(fresh) else set()
        stale = stored[[k not in keep for k in map(tuple, stored[pk].astype(str).to_numpy())]]
        if stale.empty:
            continue
        stmt = delete(table).where(and_(table.c.file_id == bindparam("stale_file_id"),
                                        *[table.c[c] == bindparam(f"stale_{c}") for c in pk]))
        with ctx.store.begin() as conn:
            conn.execute(stmt, [{"stale_file_id": file_id, **{f"stale_{c}": row[c] for c in pk}}
                                for row in stale.to_dict("records")])
            if table.name == "staged_marks":
                refresh_weeks(ctx.store, school_weeks(stale))
        removed += len(stale)
    return removed


def _restage_write(ctx: TetherContext, source: Source, entry: dict, *, layout: str | None, result,
                   quarantined: list, issues: list, staged_rows: set, bad_rows: set, error: str | None,
                   at: dt.datetime) -> dict:
    """Bring one file's record in the store up to its new reading, in the caller's transaction.

    Quarantine rows and data-quality issues in force that the new reading no longer finds are
    stamped superseded (kept, never deleted); findings it shares with the old reading stay as they
    are; new ones are added. Staged rows are written exactly as for a fresh file, and rows the file
    staged before but no longer yields are removed. The manifest gets the new status and counts,
    its old error cleared (that text stays in the superseded whole-file quarantine row).
    """
    file_id, file_name, sid = entry["file_id"], entry["file_name"], source.source_id
    new_rows = {_key(q) for q in quarantined}
    new_issues = {_key(i) for i in issues}
    rows_superseded, issues_superseded = ctx.landing.supersede(
        file_id, keep_quarantine=lambda r: _key(r) in new_rows,
        keep_issues=lambda i: _key(i) in new_issues or (_from_linkage(i) and i["row_number"] in staged_rows),
        at=at)
    removed = _drop_stale_staged(ctx, result, file_id)
    written = 0 if result is None else _write_result(ctx, result, statutory=layout in READERS)
    added = ctx.landing.quarantine(source_id=sid, file_id=file_id, file_name=file_name, rows=quarantined, at=at)
    added_issues = ctx.landing.record_issues(source_id=sid, file_id=file_id, file_name=file_name, issues=issues, at=at)
    rows_read = None if result is None else result.rows_read
    counts = (None, None, None, None) if result is None else (rows_read, len(staged_rows), len(bad_rows),
                                                              result.rows_superseded)
    changed = ctx.landing.mark_restaged(file_id, status="failed" if error else "staged", layout=layout,
                                        rows_read=counts[0], rows_staged=counts[1], rows_quarantined=counts[2],
                                        rows_superseded=counts[3], error=error, at=at)
    before_staged = 0 if pd.isna(entry.get("rows_staged")) else int(entry["rows_staged"])
    return {"file_id": file_id, "file_name": file_name, "layout": layout,
            "status_before": entry["status"], "status": "failed" if error else "staged", "error": error,
            "rows_read": rows_read or 0, "rows_staged": len(staged_rows), "rows_quarantined": len(bad_rows),
            "rows_superseded": counts[3] or 0, "rows_newly_staged": max(len(staged_rows) - before_staged, 0),
            "quarantine_rows_superseded": rows_superseded, "quarantine_rows_added": added,
            "issues_superseded": issues_superseded, "issues_added": added_issues,
            "staged_rows_written": written, "staged_rows_removed": removed,
            "changed": bool(changed or rows_superseded or issues_superseded or added or added_issues
                            or removed or written),
            "reasons": Counter(_reason_class(q.reason) for q in quarantined)}


def select_files(entries: list[dict], file: str) -> list[dict]:
    """The manifest rows a `--file` names: a file name or glob (any letter case), or a file_id prefix."""
    pattern = file.strip().lower()
    return [e for e in entries
            if fnmatch.fnmatchcase(e["file_name"].lower(), pattern) or e["file_id"].startswith(pattern)]


def restage_source(ctx: TetherContext, source: Source, file: str | None = None) -> dict:
    """Re-read landed files of the source under the current configuration and layout, without the
    school sending them again: by default every file that failed or had every row quarantined; with
    `file` (a file name, a glob or a file_id prefix) the files it names that have been staged or
    refused, whatever their state. Each file is staged exactly as if it had arrived fresh, and the
    old failure is superseded (kept, marked, no longer counted). Re-staging twice changes nothing
    the second time. Files still waiting to be staged are left to the ingest job.

    A file that cannot be re-read at all (an unexpected error) is left as it was and named in
    `errors`; the others are still re-read. The caller decides whether that fails the run.
    """
    entries = ctx.landing.read_through(source.source_id)
    chosen = select_files(entries, file) if file else [e for e in entries if refused_whole(e)]
    files, failures = [], []
    for entry in chosen:
        try:
            write = _ingest_landed(ctx, source, entry, restage=True)
            with ctx.store.begin():
                files.append(write())
        except Exception as exc:    # the other files are still re-read; then it is raised
            failures.append(f"{entry['file_name']} ({entry['file_id'][:12]}): {exc}")
    reasons: Counter = Counter()
    for f in files:
        reasons.update(f.pop("reasons"))
    figures = {
        "files_reread": len(files), "files_changed": sum(f["changed"] for f in files),
        "files_now_staged": sum(f["status"] == "staged" for f in files),
        "files_still_failed": sum(f["status"] == "failed" for f in files),
        **{k: sum(f[k] for f in files) for k in ("rows_read", "rows_staged", "rows_newly_staged", "rows_quarantined",
                                                 "quarantine_rows_superseded", "issues_superseded",
                                                 "staged_rows_removed")},
        "quarantine_reasons": dict(reasons.most_common(10)),
        "files": files,
        "errors": failures,
    }
    return figures


# --- linked record and signals ---------------------------------------------------------------

def social_care(ctx: TetherContext) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Staged social-care persons and episodes, extract and statutory returns as one picture."""
    return staged_social_care(ctx.store.read(t.staged_sc_persons), ctx.store.read(t.staged_sc_episodes))


IDENTIFIER_FIELD = {"upn": "upn", "nhs": "nhs_number"}


def _record_identifier_conflicts(ctx: TetherContext, conflicts: pd.DataFrame) -> int:
    """Identifiers shared by records that disagree on who the child is, as data-quality issues
    against the file and row each record came from (recorded once however often linkage runs)."""
    known = conflicts[conflicts["source_id"].notna() & conflicts["file_id"].notna()]
    return _record_file_issues(ctx, pd.DataFrame({
        "source_id": known["source_id"].to_numpy(), "file_id": known["file_id"].to_numpy(),
        "row_number": pd.Series([None if pd.isna(n) else int(n) for n in known["row_number"]], dtype=object),
        "field": [IDENTIFIER_FIELD[i] for i in known["identifier"]], "issue": known["reason"].to_numpy()}))


def _record_file_issues(ctx: TetherContext, issues: pd.DataFrame) -> int:
    """Data-quality issues (source_id, file_id, row_number, field, issue) against their files,
    each recorded once however often this runs."""
    if issues.empty:
        return 0
    manifest = ctx.store.read(t.landing_manifest, columns=["file_id", "file_name"])
    names = dict(zip(manifest["file_id"], manifest["file_name"]))
    now, added = dt.datetime.now(dt.timezone.utc), 0
    for (source_id, file_id), rows in issues.groupby(["source_id", "file_id"], sort=True):
        added += ctx.landing.record_issues(source_id=source_id, file_id=file_id, file_name=names.get(file_id, ""),
                                           issues=rows.to_dict("records"), at=now)
    return added


def link(ctx: TetherContext) -> dict:
    """Map every source record to a pseudonymous child_key (exact tokens; restricted never linked).

    Identifiers shared by records that disagree on name and date of birth are not trusted within
    one agency (two children) and are reported for review across agencies. Social-care episodes
    and allocations whose PersonID is in no persons file are recorded as data-quality issues
    (transforms/person_references.py): they count for no child.
    """
    store = ctx.store
    persons, _ = social_care(ctx)
    links, conflicts = link_with_conflicts(store.read(t.staged_pupils), persons, store.read(t.staged_camhs_referrals))
    store.replace(t.child_links, links)
    recorded = _record_identifier_conflicts(ctx, conflicts)
    recorded += _record_file_issues(ctx, rows_without_person(
        persons, store.read(t.staged_sc_episodes), store.read(t.staged_sc_allocations)))
    per_child = links.groupby("child_key")["source_kind"].nunique() if len(links) else pd.Series(dtype=int)
    linked = conflicts["linked"].astype(bool) if len(conflicts) else pd.Series(dtype=bool)
    return {"records": len(links), "children": int(links["child_key"].nunique()) if len(links) else 0,
            "children_linked_across_agencies": int((per_child > 1).sum()),
            "by_rule": {k: int(v) for k, v in links["linked_on"].value_counts().items()} if len(links) else {},
            "identifiers_not_linked": int((~linked).sum()), "identifiers_linked_for_review": int(linked.sum()),
            "data_quality_issues_recorded": recorded}


def build_record(ctx: TetherContext) -> dict:
    store = ctx.store
    persons, _ = social_care(ctx)
    record = child_record(store.read(t.child_links), store.read(t.staged_pupils), persons,
                          store.read(t.staged_camhs_referrals), ctx.as_of)
    store.replace(t.child_record, record)
    return {"children": len(record), "in_school_feed": int(record["in_school_feed"].sum()) if len(record) else 0,
            "with_open_camhs": int(record["camhs_open"].sum()) if len(record) else 0}


RUN_WINDOW_DAYS = 42    # six weeks: runs are counted back over recent marks; longer ones over the history


def _category(ctx: TetherContext, mark: str, day: dt.date) -> str | None:
    try:
        return ctx.config.codes.category(mark, day)
    except (KeyError, ValueError):
        return None


def current_runs(ctx: TetherContext) -> pd.DataFrame:
    """Each enrolment's current run of consecutive unauthorised school days, from the last
    RUN_WINDOW_DAYS of marks of the enrolments that may have one (an unauthorised session among
    them, or no possible session, when every run mark is an unauthorised code); an enrolment whose run may go on before them is re-counted over its whole
    history (few ever are), so the answer is exact without reading a year of marks."""
    signals, today = ctx.config.signals, ctx.as_of.astimezone(LONDON).date()
    options = {"unauthorised_marks": tuple(signals.get("consecutive_unauthorised_marks", ("G", "N", "O"))),
               "count_u": bool(signals.get("count_u_as_unauthorised_run", False))}
    only_unauthorised = all(_category(ctx, mark, today) == "unauthorised" for mark in run_marks(**options))
    recent = marks_between(ctx.store, today - dt.timedelta(days=RUN_WINDOW_DAYS), today,
                           run_candidates=only_unauthorised)
    # Any other enrolment's latest school day with a possible session breaks the run: it has none
    # (unless its school marks possible sessions on days the calendar says are not school days).
    runs = consecutive_runs(recent, ctx.config.calendar, as_of=ctx.as_of, **options)
    unbroken = runs[runs["unbroken"].astype(bool)]
    if len(unbroken):
        history = marks_between(ctx.store, None, today, zip(unbroken["laestab"], unbroken["pupil_ref"]))
        again = consecutive_runs(history, ctx.config.calendar, as_of=ctx.as_of, **options)
        runs = pd.concat([runs[~runs["unbroken"].astype(bool)], again], ignore_index=True)
    return runs.drop(columns="unbroken")


def compute_measures(ctx: TetherContext) -> dict:
    """DfE attendance measures per enrolment for the academic year and the current term, from
    per-enrolment sums the store computes (a year of marks is never read into memory)."""
    store, cfg = ctx.store, ctx.config
    links = store.read(t.child_links)
    signals = cfg.signals
    consecutive = current_runs(ctx)
    today = ctx.as_of.astimezone(LONDON).date()
    frames = []
    for period, start, end in term_periods(cfg.calendar, ctx.as_of):
        frames.append(measures_from_sums(
            session_sums(store, start, min(end, today)), links, period=period, period_start=start,
            period_end=end, as_of=ctx.as_of,
            pa_threshold=float(signals.get("persistent_absence_threshold", 0.10)),
            sa_threshold=float(signals.get("severe_absence_threshold", 0.50)),
            consecutive=consecutive))
    measures = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    store.replace(t.attendance_measures, measures)
    year = measures[measures["period"] == "academic_year"] if len(measures) else measures
    return {"enrolments": len(year),
            "persistent_absence": int(year["persistent_absence"].sum()) if len(year) else 0,
            "severe_absence": int(year["severe_absence"].sum()) if len(year) else 0,
            "ten_or_more_consecutive_unauthorised_days":
                int((year["consecutive_unauthorised_days"] >= 10).sum()) if len(year) else 0}


def compute_cohorts(ctx: TetherContext) -> dict:
    store, signals = ctx.store, ctx.config.signals
    _, episodes = social_care(ctx)
    membership = derive_cohorts(episodes, store.read(t.child_links),
                                store.read(t.child_record), as_of=ctx.as_of,
                                ever6_years=int(signals.get("ever6_years", 6)),
                                excluded_legal_status=tuple(signals.get("ever6_excluded_legal_status", ())))
    store.replace(t.cohort_membership, membership)
    return {k: int(v) for k, v in membership["cohort"].value_counts().items()} if len(membership) else {}


# --- flags and outbox ------------------------------------------------------------------------

def reporting_schools(marks: pd.DataFrame, day: dt.date) -> set[str]:
    """Schools that have sent any register for `day`: only these can show 'no mark'."""
    if marks.empty:
        return set()
    return set(marks.loc[marks["session_date"] == day, "laestab"].astype(str))


def raise_flags(ctx: TetherContext) -> dict:
    """Evaluate the flag rules for today's sessions; store new flags once each."""
    store, cfg = ctx.store, ctx.config
    today = ctx.as_of.astimezone(LONDON).date()
    marks = store.read(t.staged_marks, where=t.staged_marks.c.session_date == today)
    flags = evaluate_flags(cfg.flag_rules, marks=marks, roll=store.read(t.staged_pupils),
                           links=store.read(t.child_links), record=store.read(t.child_record),
                           cohort=store.read(t.cohort_membership), calendar=cfg.calendar, as_of=ctx.as_of,
                           reporting_schools=reporting_schools(marks, today))
    new = flags
    if len(flags):
        existing = set(store.read(t.flags, columns=["flag_id"])["flag_id"])
        new = flags[~flags["flag_id"].isin(existing)]
        if len(new):
            store.insert(t.flags, new, ignore_conflicts=True)
    by_rule = {k: int(v) for k, v in flags["rule"].value_counts().items()} if len(flags) else {}
    return {"flags_today": len(flags), "flags_new": len(new), "by_rule": by_rule}


def _identity_of(ctx: TetherContext, child_key: str, record: pd.Series, pupils: pd.DataFrame,
                 persons: pd.DataFrame) -> dict:
    """The child's identity, decrypted in memory only to build an authorised message."""
    blob = None
    if isinstance(record.get("pupil_ref"), str):
        row = pupils[(pupils["pupil_ref"] == record["pupil_ref"]) & (pupils["laestab"] == record["laestab"])]
        blob = row["identity_enc"].iloc[0] if len(row) else None
    if blob is None and isinstance(record.get("person_ref"), str):
        row = persons[persons["person_ref"] == record["person_ref"]]
        blob = row["identity_enc"].iloc[0] if len(row) else None
    return decrypt_json(ctx.keys.identity_key, bytes(blob)) if blob is not None else {}


RULE_WORDING = {
    "unexplained_absence_today": "no attendance mark or an unexplained absence this {session} session",
    "suspension": "suspended ({mark}) this {session} session",
}


def queue_deliveries(ctx: TetherContext) -> dict:
    """Address today's flags, filter each message by the sharing policy, queue and audit it.

    Each delivery and its audit entry are stored in one transaction; a re-run queues and audits
    nothing twice."""
    store, cfg = ctx.store, ctx.config
    today = ctx.as_of.astimezone(LONDON).date()
    flags = store.read(t.flags, where=t.flags.c.session_date == today)
    if flags.empty:
        return {"deliveries_new": 0, "by_recipient": {}}
    record = store.read(t.child_record).set_index("child_key", drop=False)
    cohort = store.read(t.cohort_membership)
    deliveries = address_flags(flags, allocations=store.read(t.staged_sc_allocations),
                               links=store.read(t.child_links), record=record.reset_index(drop=True),
                               cohort=cohort, recipients_config=cfg.recipients, rules=cfg.flag_rules,
                               as_of=ctx.as_of)
    done = outbox.queued_and_audited(store)     # a delivery queued without its entry is audited now
    deliveries = deliveries[~deliveries["delivery_id"].isin(done)]
    if deliveries.empty:
        return {"deliveries_new": 0, "by_recipient": {}}
    pupils, persons = store.read(t.staged_pupils), store.read(t.staged_sc_persons)
    measures = store.read(t.attendance_measures)
    term = measures[measures["period"] != "academic_year"].set_index("pupil_ref") if len(measures) else measures
    schools = cfg.schools
    flag_by_id = flags.set_index("flag_id")
    payloads, audit, fields_by_delivery = {}, {}, {}
    for d in deliveries.itertuples(index=False):
        flag = flag_by_id.loc[d.flag_id]
        rec = record.loc[flag["child_key"]]
        identity = _identity_of(ctx, flag["child_key"], rec, pupils, persons)
        evidence = json.loads(flag["evidence"])
        m = term.loc[rec["pupil_ref"]] if isinstance(rec.get("pupil_ref"), str) and rec["pupil_ref"] in term.index else None
        if isinstance(m, pd.DataFrame):
            m = m.iloc[0]
        message = {
            "child_display_name": display_name(identity.get("forename"), identity.get("surname")),
            "year_group": rec.get("year_group"),
            "school_name": schools[flag["laestab"]].name if flag["laestab"] in schools else flag["laestab"],
            "rule": flag["rule"],
            "what_happened": RULE_WORDING.get(flag["rule"], flag["rule"]).format(
                session=flag["session"], mark=evidence.get("mark", "")),
            "session_date": str(flag["session_date"]),
            "session": flag["session"],
            "register_closed_at": evidence.get("register_close"),
            "days_missed_term": float(m["days_missed"]) if m is not None else None,
            "unauthorised_days_term": float(m["unauthorised_sessions"]) / 2 if m is not None else None,
        }
        kept, fields = filter_payload(cfg.policy, d.channel, d.recipient_kind, message)
        payloads[d.delivery_id] = kept
        fields_by_delivery[d.delivery_id] = fields
        rule = cfg.flag_rules.get(flag["rule"], {})
        audit[d.delivery_id] = {
            "at": dt.datetime.now(dt.timezone.utc).isoformat(), "actor": "tether:flags",
            "action": "alert_queued", "recipient": d.recipient_address or d.recipient_id,
            "child_key": flag["child_key"], "fields": json.dumps(fields),
            "purpose": rule.get("purpose") or flag["rule"],
            "lawful_basis": cfg.policy.get("lawful_basis", ""), "ref": d.delivery_id}
    deliveries = deliveries.assign(fields=[json.dumps(fields_by_delivery[i]) for i in deliveries["delivery_id"]])
    written = outbox.enqueue_with_audit(store, deliveries, payloads=payloads, entries=audit,
                                        identity_key=ctx.keys.identity_key, at=dt.datetime.now(dt.timezone.utc))
    return {"deliveries_new": int(written),
            "by_recipient": {k: int(v) for k, v in deliveries["recipient_kind"].value_counts().items()}}
