"""A school whose register has not arrived shows as late, and its pupils are never counted present."""
from __future__ import annotations

import datetime as dt
import io

import pytest
from zoneinfo import ZoneInfo

from connectors.store_setup import init_store
from orchestration.runner import run_job
from orchestration.summary import collect
from orchestration.resources import TetherContext
from schemas import tables as t
from sharing.keys import write_new_keys
from synthetic.generate import generate_la

pytestmark = pytest.mark.integration
AS_OF = dt.datetime(2026, 11, 30, 9, 45, tzinfo=ZoneInfo("Europe/London"))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("late")
    report = generate_la(root / "la", seed=21, n_schools=3, n_pupils=240, as_of=AS_OF)
    env = {"TETHER_CONFIG_DIR": str(root / "la" / "config"), "TETHER_DATA_DIR": str(root / "data"),
           "TETHER_DATABASE_URL": f"sqlite:///{root / 'tether.sqlite'}", "TETHER_AS_OF": AS_OF.isoformat(),
           "DAGSTER_HOME": str(root / "dagster_home"), **write_new_keys(root / "keys")}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        init_store(env["TETHER_DATABASE_URL"])[0].dispose()
        result = run_job("full_refresh", stream=io.StringIO())
        ctx = TetherContext(env["TETHER_DATABASE_URL"], env["TETHER_CONFIG_DIR"], env["TETHER_DATA_DIR"], env["TETHER_AS_OF"])
        yield report, result, ctx


def test_late_school_fails_its_freshness_check_as_a_warning(run):
    report, result, _ = run
    evaluations = {e.event_specific_data.check_name: e.event_specific_data for e in result.all_events
                   if e.event_type_value == "ASSET_CHECK_EVALUATION"}
    late = evaluations[f"register_fresh_{report.late_school}"]
    assert not late.passed and late.severity.value == "WARN"
    assert result.success      # a late school holds up nothing else
    others = [c for name, c in evaluations.items() if name.startswith("register_fresh_") and name != late.check_name]
    assert others and all(c.passed for c in others)


def test_late_school_appears_late_in_the_operator_summary(run):
    report, _, ctx = run
    summary = collect(ctx.store, ctx.config, ctx.as_of)
    assert [s["laestab"] for s in summary["schools_not_fresh"]] == [report.late_school]
    assert summary["schools_not_fresh"][0]["status"] == "late"


def test_late_schools_pupils_are_not_counted_present_today(run):
    report, _, ctx = run
    today = AS_OF.date()
    marks = ctx.store.read(t.staged_marks)
    assert not ((marks["laestab"] == report.late_school) & (marks["session_date"] == today)).any()
    # their measures carry no session for today: possible sessions end with the last register received
    measures = ctx.store.read(t.attendance_measures, where=t.attendance_measures.c.period == "academic_year")
    late = marks[marks["laestab"] == report.late_school]
    per_pupil = late.groupby("pupil_ref").apply(lambda g: int((g["category"] != "not_possible").sum()), include_groups=False)
    got = measures[measures["laestab"] == report.late_school].set_index("pupil_ref")["possible_sessions"]
    assert (got.reindex(per_pupil.index) == per_pupil).all()
    # and no 'no mark' flag is raised for a school that has sent nothing today
    flags = ctx.store.read(t.flags)
    assert not (flags["laestab"] == report.late_school).any()


def test_a_daily_extract_not_yet_replaced_shows_late_the_next_morning(run):
    _, _, ctx = run
    tomorrow = TetherContext(ctx.database_url, str(ctx.config_dir), str(ctx.data_dir), "2026-12-01T10:00")
    late = {r["source_id"] for r in collect(tomorrow.store, tomorrow.config, tomorrow.as_of)["sources_not_fresh"]}
    assert late == {"social_care", "camhs"}
    assert collect(ctx.store, ctx.config, ctx.as_of)["sources_not_fresh"] == []
