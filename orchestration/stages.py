"""Each stage of the data's way as one function over a TetherContext.

Dagster assets (orchestration/assets.py) and the CLI call these; they compose connectors (I/O)
with transforms (pure) and return the figures a data team wants to see, with no identity in them.
"""
from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Callable

import pandas as pd

from connectors import outbox
from connectors.folder import complete_files
from connectors.landing import check_file_name
from schemas import tables as t
from schemas.calendar import LONDON
from schemas.config import Source
from sharing.crypto import decrypt_json
from sharing.policy import display_name, filter_payload
from transforms.cohorts import cohorts as derive_cohorts
from transforms.consecutive import consecutive_unauthorised_days
from transforms.flags import address_flags, evaluate_flags
from transforms.ingest import QuarantinedRow, ingest_file
from transforms.statutory.ingest import READERS, ingest_return
from transforms.statutory.merge import staged_social_care
from transforms.linkage import link_with_conflicts
from transforms.measures import attendance_measures, term_periods
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
    new = seen = 0
    refused: Counter = Counter()
    for path in complete_files(folder, patterns, stable_seconds=float(source.options.get("stable_seconds", 0))):
        try:
            check_file_name(path.name)
        except ValueError as exc:       # left in the folder, reported: nothing is lost
            refused[str(exc)] += 1
            continue
        landed = ctx.landing.receive(source.source_id, path.name, path.read_bytes(),
                                     layout=source.layout_for(path.name),
                                     received_at=dt.datetime.now(dt.timezone.utc))
        new += landed.is_new
        seen += not landed.is_new
    figures = {"files_new": new, "files_already_landed": seen, "files_refused": sum(refused.values())}
    if refused:
        figures["refused_reasons"] = dict(refused)
    return figures


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
    table = t.metadata.tables[table_name]
    if only_new:
        pk = [c.name for c in table.primary_key.columns]
        existing = _existing_keys(ctx, table, df)
        keys = map(tuple, df[pk].astype(str).to_numpy())
        df = df[[k not in existing for k in keys]]
        if df.empty:
            return 0
    return ctx.store.upsert(table, df, newer_column=NEWER_COLUMN.get(table_name))


def stage_file(ctx: TetherContext, source: Source, entry: dict) -> dict:
    """Read one landed file through its layout (or statutory reader), validate, pseudonymise and
    stage it. Returns the file's reconciliation: rows read = rows staged + rows quarantined."""
    return _ingest_landed(ctx, source, entry)()


def _ingest_landed(ctx: TetherContext, source: Source, entry: dict) -> Callable[[], dict]:
    """Ingest one landed file (no store writes yet); returns the function that stages the result,
    its staged rows, quarantine, issues and manifest status in one transaction, and reconciles."""
    file_id, file_name = entry["file_id"], entry["file_name"]
    layout_name = entry.get("layout") or source.layout_for(file_name)
    now = dt.datetime.now(dt.timezone.utc)
    if not layout_name:
        reason = f"no layout configured for this file name in source {source.source_id}"
        raw = ctx.landing.read(file_id)

        def refuse() -> dict:
            with ctx.store.begin():
                ctx.landing.quarantine(source_id=source.source_id, file_id=file_id, file_name=file_name,
                                       rows=[QuarantinedRow(None, None, reason, raw)], at=now)
                ctx.landing.mark_failed(file_id, reason)
            return {"rows_read": 0, "rows_staged": 0, "rows_quarantined": 0, "reasons": Counter({reason: 1})}
        return refuse
    data = ctx.landing.read(file_id)
    statutory = layout_name in READERS
    if statutory:
        result = ingest_return(data, reader=layout_name, file_name=file_name, source_id=source.source_id,
                               file_id=file_id, keys=ctx.keys)
    else:
        result = ingest_file(data, file_name=file_name, source_id=source.source_id, file_id=file_id,
                             layout=ctx.config.layout(layout_name), codes=ctx.config.codes, keys=ctx.keys,
                             received_at=entry["received_at"])
    staged_rows = set(result.staged["row_number"].astype(int)) if len(result.staged) else set()
    if statutory:
        for extra in result.extra.values():
            staged_rows |= set(extra["row_number"].astype(int))
    bad_rows = {q.row_number for q in result.quarantined if q.row_number is not None} - staged_rows

    def write() -> dict:
        with ctx.store.begin():
            # A statutory return never overwrites the case-management extract's person (the extract wins).
            _write_staged(ctx, result.table, result.staged,
                          only_new=statutory and result.table == "staged_sc_persons")
            for table_name, extra in result.extra.items():
                _write_staged(ctx, table_name, extra, only_new=table_name in ("staged_pupils", "staged_sc_persons"))
            ctx.landing.quarantine(source_id=source.source_id, file_id=file_id, file_name=file_name,
                                   rows=result.quarantined, at=now)
            ctx.landing.record_issues(source_id=source.source_id, file_id=file_id, file_name=file_name,
                                      issues=result.issues, at=now)
            ctx.landing.mark_staged(file_id, rows_read=result.rows_read, rows_staged=len(staged_rows),
                                    rows_quarantined=len(bad_rows))
            if result.file_error:   # the file was refused whole; its rows (if any could be split) are quarantined
                ctx.landing.mark_failed(file_id, result.file_error)
        return {"rows_read": result.rows_read, "rows_staged": len(staged_rows), "rows_quarantined": len(bad_rows),
                "reasons": Counter(_reason_class(q.reason) for q in result.quarantined)}
    return write


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
        writes, failure = [], None
        for entry in pending[start:start + FILES_PER_TRANSACTION]:
            try:
                writes.append(_ingest_landed(ctx, source, entry))
            except Exception as exc:    # the files before it are still staged, then it is raised
                failure = exc
                break
        with ctx.store.begin():
            outs = [write() for write in writes]
        for out in outs:
            totals["files"] += 1
            for k in ("rows_read", "rows_staged", "rows_quarantined"):
                totals[k] += out[k]
            reasons.update(out["reasons"])
        if failure is not None:
            raise failure
    return {**{k: int(v) for k, v in totals.items()}, "quarantine_reasons": dict(reasons.most_common(10))}


# --- linked record and signals ---------------------------------------------------------------

def social_care(ctx: TetherContext) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Staged social-care persons and episodes, extract and statutory returns as one picture."""
    return staged_social_care(ctx.store.read(t.staged_sc_persons), ctx.store.read(t.staged_sc_episodes))


IDENTIFIER_FIELD = {"upn": "upn", "nhs": "nhs_number"}


def _record_identifier_conflicts(ctx: TetherContext, conflicts: pd.DataFrame) -> int:
    """Identifiers shared by records that disagree on who the child is, as data-quality issues
    against the file and row each record came from (recorded once however often linkage runs)."""
    known = conflicts[conflicts["source_id"].notna() & conflicts["file_id"].notna()]
    if known.empty:
        return 0
    manifest = ctx.store.read(t.landing_manifest, columns=["file_id", "file_name"])
    names = dict(zip(manifest["file_id"], manifest["file_name"]))
    now, added = dt.datetime.now(dt.timezone.utc), 0
    for (source_id, file_id), rows in known.groupby(["source_id", "file_id"], sort=True):
        issues = [{"row_number": None if pd.isna(r.row_number) else int(r.row_number),
                   "field": IDENTIFIER_FIELD[r.identifier], "issue": r.reason} for r in rows.itertuples()]
        added += ctx.landing.record_issues(source_id=source_id, file_id=file_id,
                                           file_name=names.get(file_id, ""), issues=issues, at=now)
    return added


def link(ctx: TetherContext) -> dict:
    """Map every source record to a pseudonymous child_key (exact tokens; restricted never linked).

    Identifiers shared by records that disagree on name and date of birth are not trusted within
    one agency (two children) and are reported for review across agencies.
    """
    store = ctx.store
    persons, _ = social_care(ctx)
    links, conflicts = link_with_conflicts(store.read(t.staged_pupils), persons, store.read(t.staged_camhs_referrals))
    store.replace(t.child_links, links)
    recorded = _record_identifier_conflicts(ctx, conflicts)
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


def compute_measures(ctx: TetherContext) -> dict:
    """DfE attendance measures per enrolment for the academic year and the current term."""
    store, cfg = ctx.store, ctx.config
    marks = store.read(t.staged_marks)
    links = store.read(t.child_links)
    signals = cfg.signals
    marks_set = tuple(signals.get("consecutive_unauthorised_marks", ("G", "N", "O")))
    consecutive = consecutive_unauthorised_days(marks, cfg.calendar, as_of=ctx.as_of,
                                                unauthorised_marks=marks_set,
                                                count_u=bool(signals.get("count_u_as_unauthorised_run", False)))
    frames = []
    for period, start, end in term_periods(cfg.calendar, ctx.as_of):
        frames.append(attendance_measures(
            marks, links, period=period, period_start=start, period_end=end, as_of=ctx.as_of,
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
            "purpose": rule.get("purpose", flag["rule"]),
            "lawful_basis": cfg.policy.get("lawful_basis", ""), "ref": d.delivery_id}
    deliveries = deliveries.assign(fields=[json.dumps(fields_by_delivery[i]) for i in deliveries["delivery_id"]])
    written = outbox.enqueue_with_audit(store, deliveries, payloads=payloads, entries=audit,
                                        identity_key=ctx.keys.identity_key, at=dt.datetime.now(dt.timezone.utc))
    return {"deliveries_new": int(written),
            "by_recipient": {k: int(v) for k, v in deliveries["recipient_kind"].value_counts().items()}}
