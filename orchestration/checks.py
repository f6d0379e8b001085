"""Asset checks: the contracts, the reconciliations and source freshness, visible in the UI.

Blocking checks stop bad data flowing on: a staged table that breaks its pandera contract, a
file whose counts do not reconcile, a restricted record that got linked or flagged, a broken
audit chain.
"""
from __future__ import annotations

import datetime as dt

import dagster as dg
import pandas as pd

from orchestration import freshness, stages
from orchestration.resources import TetherResource
from schemas import tables as t
from schemas.config import Source, TetherConfig
from schemas.feeds import STATUTORY_READERS
from sharing.audit import verify
from transforms.validate import STAGED_SCHEMAS

FEED_TABLES = {
    "attendance": ("staged_marks", "staged_pupils"),
    "statutory": ("staged_sc_persons", "staged_sc_episodes"),
    "pupils": ("staged_pupils",),
    "sc_persons": ("staged_sc_persons",),
    "sc_episodes": ("staged_sc_episodes",),
    "sc_allocations": ("staged_sc_allocations",),
    "camhs_referrals": ("staged_camhs_referrals",),
}


def source_checks(source: Source, config: TetherConfig) -> list[dg.AssetChecksDefinition]:
    sid = source.source_id
    asset = dg.AssetKey(["staged", sid])
    layouts = [f.layout for f in source.files] or (["odbc-marks", "odbc-pupils"] if source.transport == "odbc" else [])
    feeds = {"statutory" if name in STATUTORY_READERS else config.layout(name).feed for name in layouts}
    tables = sorted({tb for feed in feeds for tb in FEED_TABLES.get(feed, ())})

    @dg.asset_check(asset=asset, name="rows_reconcile", blocking=True,
                    description="For every file of this source: rows read = rows staged + rows superseded "
                                "(an earlier mark of a session replaced by a later edit in the same file) + "
                                "rows quarantined, and no staged file still counts a whole-file refusal (a "
                                "re-staging supersedes it). Only quarantine rows in force count.")
    def rows_reconcile(tether: TetherResource) -> dg.AssetCheckResult:
        store = tether.ctx.store
        m = store.read(t.landing_manifest, where=t.landing_manifest.c.source_id == sid)
        done = m[m["status"].isin(["staged", "failed"]) & m["rows_read"].notna()]
        superseded = done["rows_superseded"].fillna(0)
        bad = done[done["rows_read"] != done["rows_staged"] + superseded + done["rows_quarantined"]]
        q = store.read(t.quarantine, where=t.quarantine.c.source_id == sid,
                       columns=["file_id", "row_number", "superseded_at"])
        in_force = q[q["superseded_at"].isna()]
        refused = set(in_force.loc[in_force["row_number"].isna(), "file_id"])
        stale = m[(m["status"] == "staged") & m["file_id"].isin(refused)]
        return dg.AssetCheckResult(passed=bad.empty and stale.empty, metadata={
            "files_staged": len(done), "files_failed": int((m["status"] == "failed").sum()),
            "files_not_reconciling": len(bad), "staged_files_still_counting_a_refusal": len(stale),
            "rows_read": int(done["rows_read"].sum()), "rows_staged": int(done["rows_staged"].sum()),
            "rows_superseded": int(superseded.sum()), "rows_quarantined": int(done["rows_quarantined"].sum()),
            "quarantine_rows_in_force": len(in_force),
            "files_restaged": int(m["restaged_at"].notna().sum()),
            "quarantine_rows_superseded_by_restaging": int(q["superseded_at"].notna().sum())})

    @dg.asset_check(asset=asset, name="staged_contract", blocking=True,
                    description=f"Rows staged since the last check satisfy the canonical contracts "
                                f"({', '.join(tables)}). Each file's rows are proved once, when they "
                                f"arrive: what is already stored is never re-read.")
    def staged_contract(tether: TetherResource) -> dg.AssetCheckResult:
        store, manifest = tether.ctx.store, t.landing_manifest
        unchecked = store.read(manifest, where=(manifest.c.source_id == sid) & (manifest.c.status == "staged")
                               & manifest.c.contract_checked_at.is_(None), columns=["file_id"])["file_id"].tolist()
        failures = {name: 0 for name in tables}
        rows = 0
        for start in range(0, len(unchecked), 500):      # well under SQLite's bound-parameter limit
            batch = unchecked[start:start + 500]
            for name in tables:
                table = t.metadata.tables[name]
                df = store.read(table, where=(table.c.source_id == sid) & table.c.file_id.in_(batch))
                rows += len(df)
                failures[name] += _contract_failures(name, df)
        passed = not any(failures.values())
        if passed and unchecked:
            with store.begin() as conn:
                conn.execute(manifest.update().where(manifest.c.file_id.in_(unchecked))
                             .values(contract_checked_at=dt.datetime.now(dt.timezone.utc)))
        return dg.AssetCheckResult(passed=passed, metadata={
            "files_checked": len(unchecked), "rows_checked": rows,
            "failures_by_table": dg.MetadataValue.json(failures)})

    return [rows_reconcile, staged_contract]


def _contract_failures(table: str, df: pd.DataFrame) -> int:
    """How many failure cases the table's pandera contract finds in `df` (values never echoed)."""
    if df.empty:
        return 0
    try:
        STAGED_SCHEMAS[table].validate(df, lazy=True)
        return 0
    except Exception as exc:  # pandera SchemaErrors: count only
        cases = getattr(exc, "failure_cases", None)
        return int(len(cases)) if cases is not None else 1


def freshness_checks(config: TetherConfig) -> list[dg.AssetChecksDefinition]:
    """One check per school (has it sent the register expected by now?) and per daily source (has
    today's extract arrived?). Late shows as a warning: it holds up nothing else."""
    checks = []
    for laestab, school in sorted(config.schools.items()):
        if school.source_id not in config.sources:
            continue

        def school_check(laestab=laestab, school=school):
            @dg.asset_check(asset=dg.AssetKey(["staged", school.source_id]), name=f"register_fresh_{laestab}",
                            description=f"{school.name} ({laestab}) has sent the register expected by now.")
            def register_fresh(tether: TetherResource) -> dg.AssetCheckResult:
                ctx = tether.ctx
                row = freshness.schools(ctx.store, ctx.config, ctx.as_of).set_index("laestab").loc[laestab]
                return dg.AssetCheckResult(
                    passed=row["status"] == "fresh", severity=dg.AssetCheckSeverity.WARN,
                    metadata={"status": row["status"], "expected_register": str(row["expected_date"]),
                              "last_register": str(row["last_register_date"]), "hours_late": float(row["hours_late"])})
            return register_fresh
        checks.append(school_check())
    for sid, source in sorted(freshness.daily_sources(config).items()):

        def source_check(sid=sid, source=source):
            @dg.asset_check(asset=dg.AssetKey(["staged", sid]), name="extract_fresh",
                            description=f"Today's extract from {sid} has arrived (expected by "
                                        f"{source.expected_by:%H:%M}).")
            def extract_fresh(tether: TetherResource) -> dg.AssetCheckResult:
                ctx = tether.ctx
                row = freshness.sources(ctx.store, ctx.config, ctx.as_of).set_index("source_id").loc[sid]
                return dg.AssetCheckResult(
                    passed=row["status"] == "fresh", severity=dg.AssetCheckSeverity.WARN,
                    metadata={"status": row["status"], "expected_extract": str(row["expected_date"]),
                              "last_extract": str(row["last_extract_date"])})
            return extract_fresh
        checks.append(source_check())
    return checks


@dg.asset_check(asset=dg.AssetKey(["linked", "child_links"]), name="restricted_never_linked", blocking=True,
                description="No restricted (adoption-sensitive) record shares a child key with another record.")
def restricted_never_linked(tether: TetherResource) -> dg.AssetCheckResult:
    store = tether.ctx.store
    links = store.read(t.child_links)
    persons, _ = stages.social_care(tether.ctx)
    restricted = set(persons.loc[persons["restricted"].fillna(False).astype(bool), "person_ref"])
    keys = links.loc[(links["source_kind"] == "social_care") & links["record_ref"].isin(restricted), "child_key"]
    sizes = links.groupby("child_key").size() if len(links) else pd.Series(dtype=int)
    linked = int((sizes.reindex(keys).fillna(0) > 1).sum()) if len(keys) else 0
    return dg.AssetCheckResult(passed=linked == 0, metadata={"restricted_records": len(restricted),
                                                             "restricted_linked": linked})


@dg.asset_check(asset=dg.AssetKey(["signals", "attendance_measures"]), name="measures_consistent", blocking=True,
                description="Possible sessions equal the sum of the categories; rates lie between 0 and 1.")
def measures_consistent(tether: TetherResource) -> dg.AssetCheckResult:
    m = tether.ctx.store.read(t.attendance_measures)
    total = m["present_sessions"] + m["aea_sessions"] + m["authorised_sessions"] + m["unauthorised_sessions"]
    bad_total = int((total != m["possible_sessions"]).sum())
    rates = m[["attendance_rate", "absence_rate"]].dropna()
    bad_rate = int(((rates < 0) | (rates > 1)).any(axis=1).sum())
    return dg.AssetCheckResult(passed=bad_total == 0 and bad_rate == 0,
                               metadata={"rows": len(m), "inconsistent_totals": bad_total, "rates_out_of_range": bad_rate})


@dg.asset_check(asset=dg.AssetKey(["flags", "absence_flags"]), name="no_restricted_child_flagged", blocking=True,
                description="No flag names a restricted child (they go only to a named officer, by hand).")
def no_restricted_child_flagged(tether: TetherResource) -> dg.AssetCheckResult:
    store = tether.ctx.store
    record = store.read(t.child_record, columns=["child_key", "restricted"])
    restricted = set(record.loc[record["restricted"].astype(bool), "child_key"])
    flags = store.read(t.flags, columns=["child_key"])
    hits = int(flags["child_key"].isin(restricted).sum())
    return dg.AssetCheckResult(passed=hits == 0, metadata={"flags": len(flags), "restricted_flagged": hits})


@dg.asset_check(asset=dg.AssetKey(["outbox", "deliveries"]), name="audit_chain_intact", blocking=True,
                description="The disclosure audit log's hash chain verifies from the first entry to the last.")
def audit_chain_intact(tether: TetherResource) -> dg.AssetCheckResult:
    entries = tether.ctx.store.read(t.audit_log).sort_values("seq").to_dict("records")
    problems = verify(entries)
    return dg.AssetCheckResult(passed=not problems, metadata={
        "entries": len(entries), "problems": dg.MetadataValue.json(problems[:20])})


def all_checks(config: TetherConfig) -> list[dg.AssetChecksDefinition]:
    per_source = [c for s in config.sources.values() for c in source_checks(s, config)]
    return per_source + freshness_checks(config) + [
        restricted_never_linked, measures_consistent, no_restricted_child_flagged, audit_chain_intact]
