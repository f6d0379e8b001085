"""The Dagster definitions load and hold every asset, check, schedule and sensor."""
from pathlib import Path

import dagster as dg

from orchestration.definitions import build_definitions
from schemas.config import load_config

SOURCES_TOML = """
[sources.school_mis_a]
transport = "folder"
path = "inbox/school_mis_a"
[[sources.school_mis_a.files]]
pattern = "*_attendance_*.csv"
layout = "mis-a"
[[sources.school_mis_a.files]]
pattern = "*_pupils_*.csv"
layout = "mis-a-pupils"

[sources.social_care]
transport = "folder"
path = "inbox/social_care"
expected_by = "06:00"
[[sources.social_care.files]]
pattern = "sc_persons_*.csv"
layout = "sc-persons"

[sources.camhs]
transport = "folder"
path = "inbox/camhs"
[[sources.camhs.files]]
pattern = "camhs_referrals_*.csv"
layout = "camhs-referrals"
"""

SCHOOLS_TOML = """
[schools."8862001"]
name = "Riverside Primary"
source = "school_mis_a"
[schools."8864001"]
name = "Hillside High"
source = "school_mis_a"
expected_by = "09:30"
"""


def _defs(tmp_path: Path) -> dg.Definitions:
    (tmp_path / "sources.toml").write_text(SOURCES_TOML)
    (tmp_path / "schools.toml").write_text(SCHOOLS_TOML)
    return build_definitions(load_config(tmp_path))


def test_every_asset_is_defined(tmp_path):
    defs = _defs(tmp_path)
    keys = {"/".join(k.path) for k in defs.resolve_asset_graph().get_all_asset_keys()}
    expected = {f"{stage}/{sid}" for stage in ("landing", "staged") for sid in ("school_mis_a", "social_care", "camhs")}
    expected |= {"linked/child_links", "record/child_record", "signals/attendance_measures",
                 "signals/cohort_membership", "flags/absence_flags", "outbox/deliveries"}
    assert keys == expected


def test_every_check_is_defined(tmp_path):
    defs = _defs(tmp_path)
    graph = defs.resolve_asset_graph()
    checks = {("/".join(k.asset_key.path), k.name) for k in graph.asset_check_keys}
    for sid in ("school_mis_a", "social_care", "camhs"):
        assert (f"staged/{sid}", "rows_reconcile") in checks
        assert (f"staged/{sid}", "staged_contract") in checks
    assert ("staged/school_mis_a", "register_fresh_8862001") in checks
    assert ("staged/school_mis_a", "register_fresh_8864001") in checks
    assert ("staged/social_care", "extract_fresh") in checks           # a daily source with a delivery time
    assert ("staged/camhs", "extract_fresh") not in checks             # no delivery time configured
    assert ("linked/child_links", "restricted_never_linked") in checks
    assert ("signals/attendance_measures", "measures_consistent") in checks
    assert ("flags/absence_flags", "no_restricted_child_flagged") in checks
    assert ("outbox/deliveries", "audit_chain_intact") in checks


def test_blocking_checks_block(tmp_path):
    defs = _defs(tmp_path)
    specs = {(("/".join(s.asset_key.path)), s.name): s for a in defs.resolve_asset_graph().assets_defs
             for s in a.check_specs}
    assert specs[("staged/social_care", "rows_reconcile")].blocking
    assert specs[("staged/social_care", "staged_contract")].blocking
    assert not specs[("staged/school_mis_a", "register_fresh_8862001")].blocking


def test_schedule_and_sensor_per_source(tmp_path):
    defs = _defs(tmp_path)
    assert defs.resolve_schedule_def("nightly_full_refresh").execution_timezone == "Europe/London"
    for sid in ("school_mis_a", "social_care", "camhs"):
        sensor = defs.resolve_sensor_def(f"watch_{sid}")
        assert sensor.job_name == f"ingest_{sid}"
    assert defs.resolve_job_def("full_refresh")


def test_automation_is_on_by_default_and_says_what_it_does(tmp_path):
    defs = _defs(tmp_path)
    schedule = defs.resolve_schedule_def("nightly_full_refresh")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert "02:00" in schedule.description and "safe to leave on" in schedule.description
    names = [f"watch_{sid}" for sid in ("school_mis_a", "social_care", "camhs")] + ["record_after_source_failure"]
    for name in names:
        sensor = defs.resolve_sensor_def(name)
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING, name
        assert "On by default" in sensor.description and "safe to leave on" in sensor.description, name
    assert "Every 60 s" in defs.resolve_sensor_def("watch_camhs").description


def test_assets_have_docstrings_for_the_ui(tmp_path):
    defs = _defs(tmp_path)
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        assert graph.get(key).description, f"{key} has no description"


def test_definitions_module_loads_without_configuration(monkeypatch):
    monkeypatch.delenv("TETHER_CONFIG_DIR", raising=False)
    defs = build_definitions(load_config(None))
    assert defs.resolve_job_def("full_refresh")
