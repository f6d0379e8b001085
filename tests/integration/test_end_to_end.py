"""End to end: every asset materialized on a small synthetic LA, checked against its ground truth.

The LA carries planted bad input (synthetic.bad_input): the measures, cohorts and flags must be
exactly those of the clean data, and the quarantine exactly what ground_truth/quarantine.csv lists.
Runs on SQLite and on PostgreSQL (the store is chosen by TETHER_DATABASE_URL, as in production).
"""
from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pandas as pd
import pytest
from zoneinfo import ZoneInfo

from connectors.store import Store
from connectors.store_setup import init_store
from orchestration.runner import run_job
from schemas import tables as t
from sharing.keys import keys_from_env, write_new_keys
from synthetic.generate import generate_la
from tests.conftest import create_pg_database, drop_pg_database
from transforms.pseudonymise import SC_PERSON_NS, pupil_ref, record_ref

AS_OF = dt.datetime(2026, 11, 30, 9, 45, tzinfo=ZoneInfo("Europe/London"))

pytestmark = pytest.mark.integration

# What the quarantine reason says for each reason kind of quarantine.csv.
REASON_HINTS = {
    "bad_date": "not a valid date", "unknown_code": "is not a DfE attendance code",
    "lower_case_code": "is lower case", "withdrawn_code": "was withdrawn", "duplicate_row": "duplicate of row",
    "truncated_row": "(truncated row)", "nul_byte": "NUL byte", "bad_session": "session labels",
    "bad_episode_type": "not one of CIN, CPP, CLA", "bad_referral_status": "not one of waiting, open, closed",
    "missing_column": "missing required column",
}


@pytest.fixture(scope="module")
def small_la(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("la")
    generate_la(root, seed=11, n_schools=3, n_pupils=300, as_of=AS_OF)
    return root


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def deployment(request, small_la, tmp_path_factory):
    """One full refresh per engine, shared by the module's tests (they only read, or re-run it
    and expect nothing to change)."""
    root = tmp_path_factory.mktemp(f"deployment-{request.param}")
    url = f"sqlite:///{root / 'tether.sqlite'}" if request.param == "sqlite" else create_pg_database()
    env = {"TETHER_CONFIG_DIR": str(small_la / "config"), "TETHER_DATA_DIR": str(root / "data"),
           "TETHER_DATABASE_URL": url, "TETHER_AS_OF": AS_OF.isoformat(),
           "DAGSTER_HOME": str(root / "dagster_home"), **write_new_keys(root / "keys")}
    with pytest.MonkeyPatch.context() as monkeypatch:
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        init_store(url)[0].dispose()
        result = run_job("full_refresh", stream=io.StringIO())
        store = Store(url)
        yield result, store, keys_from_env()
        store.dispose()
    if request.param == "postgresql":
        drop_pg_database(url)


def _truth(small_la: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(small_la / "ground_truth" / name, dtype=str, keep_default_na=False)


def test_every_step_and_blocking_check_succeeds(deployment):
    result, _, _ = deployment
    assert result.success
    failed = [e for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
              and not e.event_specific_data.passed]
    # only the late school's freshness warning may fail
    assert [e.event_specific_data.check_name for e in failed] == [
        n for n in [e.event_specific_data.check_name for e in failed] if n.startswith("register_fresh_")]
    assert len(failed) == 1


def test_every_pupils_measures_match_ground_truth(deployment, small_la):
    _, store, keys = deployment
    truth = _truth(small_la, "pupils.csv")
    measures = store.read(t.attendance_measures, where=t.attendance_measures.c.period == "academic_year")
    got = measures.set_index(["laestab", "pupil_ref"])
    assert len(got) == len(truth)
    mismatches = []
    for row in truth.itertuples(index=False):
        key = (row.laestab, pupil_ref(keys.token_key, row.laestab, row.school_pupil_id))
        m = got.loc[key]
        expected = {
            "possible_sessions": int(row.possible_sessions), "present_sessions": int(row.present_sessions),
            "aea_sessions": int(row.aea_sessions), "authorised_sessions": int(row.authorised_sessions),
            "unauthorised_sessions": int(row.unauthorised_sessions),
            "persistent_absence": row.persistent_absence == "True", "severe_absence": row.severe_absence == "True",
            "suspension_sessions": int(row.suspension_sessions), "part_time_sessions": int(row.part_time_sessions),
            "consecutive_unauthorised_days": int(row.consecutive_unauthorised_days),
        }
        actual = {k: (bool(m[k]) if isinstance(v, bool) else int(m[k])) for k, v in expected.items()}
        if actual != expected:
            mismatches.append((row.child_id, {k: (expected[k], actual[k]) for k in expected if expected[k] != actual[k]}))
    assert mismatches == []


def test_cohort_memberships_match_ground_truth(deployment, small_la):
    _, store, keys = deployment
    truth = _truth(small_la, "cohorts.csv")
    records = _truth(small_la, "records.csv")
    links = store.read(t.child_links)
    cohorts = store.read(t.cohort_membership)
    sc_key = {}
    for r in records[records["source_kind"] == "social_care"].itertuples(index=False):
        ref = record_ref(keys.token_key, SC_PERSON_NS, r.record_id)
        match = links[(links["source_kind"] == "social_care") & (links["record_ref"] == ref)]
        sc_key[r.child_id] = match["child_key"].iloc[0]
    member = {(c.child_key, c.cohort): c.status for c in cohorts.itertuples(index=False)}
    wrong = []
    for c in truth[truth["in_social_care"] == "True"].itertuples(index=False):
        key = sc_key[c.child_id]
        for cohort, flag in (("current_cwsw", c.current_cwsw), ("ever6_cwsw", c.ever6_cwsw), ("cla", c.cla_now)):
            if ((key, cohort) in member) != (flag == "True"):
                wrong.append((c.child_id, cohort, flag))
        if c.ever6_cwsw == "True" and member.get((key, "ever6_cwsw")) != c.ever6_status:
            wrong.append((c.child_id, "ever6_status", c.ever6_status, member.get((key, "ever6_cwsw"))))
    assert wrong == []
    assert sum(truth["ever6_cwsw"] == "True") == sum(cohorts["cohort"] == "ever6_cwsw")


def test_expected_flags_raised_once_each(deployment, small_la):
    _, store, keys = deployment
    expected = _truth(small_la, "expected_flags.csv")
    links = store.read(t.child_links)
    flags = store.read(t.flags)
    got = set()
    for f in flags.itertuples(index=False):
        got.add((f.child_key, f.rule, str(f.session_date), f.session))
    want = set()
    for e in expected.itertuples(index=False):
        ref = pupil_ref(keys.token_key, e.laestab, e.school_pupil_id)
        key = links.loc[(links["source_kind"] == "school") & (links["record_ref"] == ref), "child_key"].iloc[0]
        want.add((key, e.rule, e.session_date, e.session))
    assert got == want
    assert len(flags) == len(got)


def test_rerun_changes_nothing(deployment):
    _, store, _ = deployment
    before = {tb.name: len(store.read(tb)) for tb in (t.staged_marks, t.staged_pupils, t.flags, t.outbox, t.audit_log,
                                                      t.quarantine, t.landing_manifest)}
    assert run_job("full_refresh", stream=io.StringIO()).success
    after = {tb.name: len(store.read(tb)) for tb in before and (t.staged_marks, t.staged_pupils, t.flags, t.outbox,
                                                                t.audit_log, t.quarantine, t.landing_manifest)}
    assert after == before


def _row_number(value) -> int | None:
    if isinstance(value, str):
        return int(value) if value else None
    return None if pd.isna(value) else int(value)


def test_quarantine_matches_ground_truth(deployment, small_la):
    _, store, _ = deployment
    truth = _truth(small_la, "quarantine.csv")
    assert len(truth) >= 10
    want = {(r.file_name, _row_number(r.row_number)): (r.source_id, r.field, r.reason_kind)
            for r in truth.itertuples(index=False)}
    q = store.read(t.quarantine, columns=["source_id", "file_name", "row_number", "field", "reason"])
    got = {(r.file_name, _row_number(r.row_number)): (r.source_id, r.field if isinstance(r.field, str) else "", r.reason)
           for r in q.itertuples(index=False)}
    assert len(got) == len(q)                      # one entry per row (and per refused file)
    assert sorted(got, key=str) == sorted(want, key=str)
    wrong = [(k, got[k][:2], want[k]) for k in want
             if got[k][:2] != want[k][:2] or REASON_HINTS[want[k][2]] not in got[k][2]]
    assert wrong == []

    manifest = store.read(t.landing_manifest)
    staged = manifest[manifest["status"] == "staged"]
    assert len(staged) and staged["rows_read"].notna().all()
    unreconciled = staged[staged["rows_read"] != staged["rows_staged"] + staged["rows_superseded"].fillna(0)
                          + staged["rows_quarantined"]]
    assert unreconciled["file_name"].tolist() == []
    refused = {r.file_name for r in truth.itertuples(index=False) if r.row_number == ""}
    assert set(manifest.loc[manifest["status"] == "failed", "file_name"]) == refused
    assert int(manifest["rows_quarantined"].fillna(0).sum()) == sum(truth["row_number"] != "")


def test_planted_data_quality_issues_are_recorded(deployment, small_la):
    """Rows planted with a placeholder name or a date of birth that cannot be the child's are staged
    with a data-quality issue naming file, row and field (ground_truth/data_quality.csv)."""
    _, store, _ = deployment
    truth = _truth(small_la, "data_quality.csv")
    assert len(truth) >= 4
    dq = store.read(t.data_quality_issues, columns=["source_id", "file_name", "row_number", "field", "issue"])
    recorded = {(r.source_id, r.file_name, _row_number(r.row_number), r.field): r.issue for r in dq.itertuples()}
    hints = {"placeholder_name": "placeholder", "implausible_dob": "kept out of name-based linkage"}
    missing = [tuple(r) for r in truth.itertuples(index=False)
               if hints[r.reason_kind] not in recorded.get((r.source_id, r.file_name, int(r.row_number), r.field), "")]
    assert missing == []
    quarantined = store.read(t.quarantine, columns=["file_name", "row_number"])
    planted = {(r.file_name, int(r.row_number)) for r in truth.itertuples(index=False)}
    assert not planted & {(r.file_name, _row_number(r.row_number)) for r in quarantined.itertuples()}
