"""The figures a data team wants after a run: feeds, quarantine, linkage, cohorts, flags, outbox.

Everything here is counts and pseudonymous keys; nothing identifies a child.
"""
from __future__ import annotations

import pandas as pd

from connectors.store import Store
from schemas import tables as t
from schemas.config import TetherConfig
from orchestration import freshness


def collect(store: Store, config: TetherConfig, as_of, failed_checks: list[dict] | None = None) -> dict:
    """The summary's figures; `failed_checks` are the asset checks whose latest evaluation failed
    (runner.latest_check_failures), None when no Dagster instance was read."""
    manifest = store.read(t.landing_manifest)
    feeds = []
    if len(manifest):
        manifest["layout"] = manifest["layout"].fillna("(none)")
        for (source, layout), g in manifest.groupby(["source_id", "layout"]):
            feeds.append({"source": source, "layout": layout, "files": len(g),
                          "failed": int((g["status"] == "failed").sum()),
                          "rows_read": int(g["rows_read"].fillna(0).sum()),
                          "rows_staged": int(g["rows_staged"].fillna(0).sum()),
                          "rows_superseded": int(g["rows_superseded"].fillna(0).sum()),
                          "rows_quarantined": int(g["rows_quarantined"].fillna(0).sum()),
                          "restaged": int(g["restaged_at"].notna().sum())})
    # only findings in force: what a re-staging superseded stays in the store but no longer counts
    q = store.read(t.quarantine, where=t.quarantine.c.superseded_at.is_(None), columns=["source_id", "field", "reason"])
    reasons = []
    if len(q):
        q["reason_class"] = q["reason"].str.replace(r"\s*\(.*$", "", regex=True).str.slice(0, 90)
        for (source, reason), n in q.groupby(["source_id", "reason_class"]).size().sort_values(ascending=False).items():
            reasons.append({"source": source, "reason": reason, "rows": int(n)})
    dq = store.read(t.data_quality_issues, where=t.data_quality_issues.c.superseded_at.is_(None), columns=["issue"])
    superseded = store.read(t.quarantine, where=t.quarantine.c.superseded_at.is_not(None), columns=["file_id"])
    links = store.read(t.child_links)
    kinds = links.groupby("child_key")["source_kind"].nunique() if len(links) else pd.Series(dtype=int)
    cohorts = store.read(t.cohort_membership)
    measures = store.read(t.attendance_measures)
    year = measures[measures["period"] == "academic_year"] if len(measures) else measures
    ever6 = set(cohorts.loc[cohorts["cohort"] == "ever6_cwsw", "child_key"]) if len(cohorts) else set()
    year_e6 = year[year["child_key"].isin(ever6)] if len(year) else year
    flags = store.read(t.flags)
    out = store.read(t.outbox, columns=["recipient_kind", "status"])
    fresh = freshness.schools(store, config, as_of)
    daily = freshness.sources(store, config, as_of)
    summary = {
        "as_of": as_of.isoformat(),
        "feeds": feeds,
        "quarantine_reasons": reasons,
        "superseded_by_restaging": {"quarantine_rows": len(superseded),
                                    "files": int(superseded["file_id"].nunique()) if len(superseded) else 0},
        "data_quality_issues": ({k: int(v) for k, v in dq["issue"].str.split(r"[;:]").str[0].value_counts().items()}
                                if len(dq) else {}),
        "children": int(links["child_key"].nunique()) if len(links) else 0,
        "children_linked_across_agencies": int((kinds > 1).sum()),
        "cohorts": {k: int(v) for k, v in cohorts["cohort"].value_counts().items()} if len(cohorts) else {},
        "pa_sa": {
            "all pupils": _pa_sa(year),
            "Ever6 CWSW": _pa_sa(year_e6),
        },
        "flags_by_rule": {k: int(v) for k, v in flags["rule"].value_counts().items()} if len(flags) else {},
        "deliveries": {k: int(v) for k, v in out["recipient_kind"].value_counts().items()} if len(out) else {},
        "schools_not_fresh": fresh[fresh["status"] != "fresh"].to_dict("records"),
        "sources_not_fresh": daily[daily["status"] != "fresh"].to_dict("records"),
        "schools": len(fresh),
        "failed_checks": failed_checks or [],
        "checks_read": failed_checks is not None,
        "files_not_landed": _files_not_landed(store),
    }
    summary["attention"] = attention(summary)
    return summary


def attention(s: dict) -> list[dict]:
    """What an operator must look at, one entry each: a school or source late or never sent, a
    file failed, rows quarantined, an asset check failed, a file in a source folder refused or
    stale in flight. `tether status` exits 1 when any."""
    out = []
    for r in s["schools_not_fresh"]:
        out.append({"kind": f"school_{r['status']}", "subject": r["laestab"],
                    "message": f"school {r['laestab']} {r['name']}: register {r['status'].replace('_', ' ')} "
                               f"(expected the {r['expected_date']} register by {r['expected_by']}, "
                               f"last {r['last_register_date'] or 'never'})"})
    for r in s["sources_not_fresh"]:
        out.append({"kind": f"source_{r['status']}", "subject": r["source_id"],
                    "message": f"source {r['source_id']}: extract {r['status'].replace('_', ' ')} "
                               f"(expected the {r['expected_date']} extract by {r['expected_by']}, "
                               f"last {r['last_extract_date'] or 'never'})"})
    for f in s["feeds"]:
        if f["failed"]:
            out.append({"kind": "files_failed", "subject": f["source"],
                        "message": f"source {f['source']}: {f['failed']} file(s) failed (layout {f['layout']}); "
                                   f"see landing_manifest.error"})
        if f["rows_quarantined"]:
            out.append({"kind": "rows_quarantined", "subject": f["source"],
                        "message": f"source {f['source']}: {f['rows_quarantined']} row(s) quarantined "
                                   f"(layout {f['layout']}); see the quarantine table"})
    for r in s.get("files_not_landed", []):
        if r["state"] in ("refused", "stale_in_flight"):
            out.append({"kind": f"file_{r['state']}", "subject": r["source"],
                        "message": f"source {r['source']}: file {r['file']} {r['state'].replace('_', ' ')} "
                                   f"({r['reason']})"})
    for c in s["failed_checks"]:
        out.append({"kind": "check_failed", "subject": f"{c['asset']}:{c['check']}",
                    "message": f"check {c['check']} on {c['asset']} {c['outcome']} ({c['severity']}) "
                               f"in run {c['run_id']}"})
    return out


def _files_not_landed(store: Store) -> list[dict]:
    """Files seen in a source's folder at its last landing and not landed (names escaped)."""
    return [{"source": r["source_id"], "file": r["file_name"], "state": r["state"], "reason": r["reason"],
             "first_seen": r["first_seen_at"].isoformat(timespec="minutes")}
            for r in store.records(t.unlanded_files, order_by=[t.unlanded_files.c.source_id,
                                                              t.unlanded_files.c.state,
                                                              t.unlanded_files.c.file_name])]


def _pa_sa(year: pd.DataFrame) -> dict:
    if year is None or not len(year):
        return {"enrolments": 0, "persistent_absence": 0, "severe_absence": 0}
    n = len(year)
    pa, sa = int(year["persistent_absence"].sum()), int(year["severe_absence"].sum())
    return {"enrolments": n, "persistent_absence": pa, "severe_absence": sa,
            "pa_rate": round(pa / n, 3), "sa_rate": round(sa / n, 3)}


def render(s: dict) -> str:
    lines = [f"Tether summary as of {s['as_of']}", ""]
    lines.append("Feeds (files and rows; rows read = staged + superseded + quarantined):")
    lines.append(f"  {'source':<16}{'layout':<18}{'files':>7}{'failed':>7}{'read':>10}{'staged':>10}"
                 f"{'supersd.':>10}{'quarant.':>10}")
    for f in s["feeds"]:
        lines.append(f"  {f['source']:<16}{f['layout']:<18}{f['files']:>7}{f['failed']:>7}{f['rows_read']:>10}"
                     f"{f['rows_staged']:>10}{f['rows_superseded']:>10}{f['rows_quarantined']:>10}")
    lines.append("")
    lines.append("Quarantined rows by reason:" if s["quarantine_reasons"] else "Quarantined rows: none")
    for r in s["quarantine_reasons"][:15]:
        lines.append(f"  {r['rows']:>6}  {r['source']:<16} {r['reason']}")
    gone = s.get("superseded_by_restaging", {})
    if gone.get("quarantine_rows"):
        lines.append(f"  (not counted: {gone['quarantine_rows']} quarantine rows of {gone['files']} re-staged "
                     f"file(s), superseded by `tether restage` and kept in the store)")
    if s["data_quality_issues"]:
        lines.append("Data-quality issues (rows kept; see data_quality_issues for file, row and field):")
        for issue, n in s["data_quality_issues"].items():
            lines.append(f"  {n:>6}  {issue}")
    lines.append("")
    lines.append(f"Children in the record: {s['children']}  (linked across agencies: {s['children_linked_across_agencies']})")
    lines.append("Cohorts: " + ", ".join(f"{k} {v}" for k, v in sorted(s["cohorts"].items())))
    lines.append("Attendance this academic year (PA >= 10 % absence, SA >= 50 %):")
    for who, v in s["pa_sa"].items():
        lines.append(f"  {who:<12} enrolments {v['enrolments']:>6}   PA {v['persistent_absence']:>5}"
                     f" ({v.get('pa_rate', 0):.1%})   SA {v['severe_absence']:>4} ({v.get('sa_rate', 0):.1%})")
    lines.append("Flags today by rule: " + (", ".join(f"{k} {v}" for k, v in s["flags_by_rule"].items()) or "none"))
    lines.append("Deliveries queued: " + (", ".join(f"{k} {v}" for k, v in s["deliveries"].items()) or "none"))
    late = s["schools_not_fresh"]
    lines.append(f"Schools: {s['schools']}, late or never sent: {len(late)}")
    for r in late:
        lines.append(f"  LATE  {r['laestab']} {r['name']}: expected the {r['expected_date']} register by "
                     f"{r['expected_by']}, last register {r['last_register_date'] or 'never'}")
    for r in s["sources_not_fresh"]:
        lines.append(f"  LATE  source {r['source_id']}: expected the {r['expected_date']} extract by "
                     f"{r['expected_by']}, last extract {r['last_extract_date'] or 'never'}")
    waiting = s.get("files_not_landed", [])
    lines.append(f"Files in source folders not landed: {len(waiting) or 'none'}")
    for r in waiting[:50]:
        lines.append(f"  {r['state'].replace('_', ' ').upper():<16} {r['source']:<16} {r['file']}: {r['reason']} "
                     f"(since {r['first_seen']})")
    if len(waiting) > 50:
        lines.append(f"  ... and {len(waiting) - 50} more (table unlanded_files)")
    lines.append("")
    lines.extend(render_attention(s))
    return "\n".join(lines)


def render_attention(s: dict) -> list[str]:
    """The closing lines of the summary: what needs attention (the reason for exit status 1)."""
    items = s.get("attention") or []
    checks = "" if s.get("checks_read", True) else " (asset checks not read: no Dagster instance at $DAGSTER_HOME)"
    if not items:
        return [f"Needs attention: nothing{checks}"]
    return [f"Needs attention ({len(items)}){checks}:"] + [f"  ATTENTION  {a['message']}" for a in items]
