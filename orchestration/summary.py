"""The figures a data team wants after a run: feeds, quarantine, linkage, cohorts, flags, outbox.

Everything here is counts and pseudonymous keys; nothing identifies a child.
"""
from __future__ import annotations

import pandas as pd

from connectors.store import Store
from schemas import tables as t
from schemas.config import TetherConfig
from orchestration import freshness


def collect(store: Store, config: TetherConfig, as_of) -> dict:
    manifest = store.read(t.landing_manifest)
    feeds = []
    if len(manifest):
        manifest["layout"] = manifest["layout"].fillna("(none)")
        for (source, layout), g in manifest.groupby(["source_id", "layout"]):
            feeds.append({"source": source, "layout": layout, "files": len(g),
                          "failed": int((g["status"] == "failed").sum()),
                          "rows_read": int(g["rows_read"].fillna(0).sum()),
                          "rows_staged": int(g["rows_staged"].fillna(0).sum()),
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
    return {
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
    }


def _pa_sa(year: pd.DataFrame) -> dict:
    if year is None or not len(year):
        return {"enrolments": 0, "persistent_absence": 0, "severe_absence": 0}
    n = len(year)
    pa, sa = int(year["persistent_absence"].sum()), int(year["severe_absence"].sum())
    return {"enrolments": n, "persistent_absence": pa, "severe_absence": sa,
            "pa_rate": round(pa / n, 3), "sa_rate": round(sa / n, 3)}


def render(s: dict) -> str:
    lines = [f"Tether summary as of {s['as_of']}", ""]
    lines.append("Feeds (files and rows; rows read = staged + quarantined):")
    lines.append(f"  {'source':<16}{'layout':<18}{'files':>7}{'failed':>7}{'read':>10}{'staged':>10}{'quarant.':>10}")
    for f in s["feeds"]:
        lines.append(f"  {f['source']:<16}{f['layout']:<18}{f['files']:>7}{f['failed']:>7}{f['rows_read']:>10}"
                     f"{f['rows_staged']:>10}{f['rows_quarantined']:>10}")
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
    return "\n".join(lines)
