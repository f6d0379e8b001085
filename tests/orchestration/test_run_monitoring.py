"""Both Dagster instances enable run monitoring, so a killed or hung run is failed, not left STARTED."""
from pathlib import Path

import pytest
from dagster._core.instance.config import dagster_instance_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("folder", [ROOT / "dagster_home", ROOT / "infra" / "deploy"])
def test_run_monitoring_is_on_with_a_runtime_limit(folder):
    config, _ = dagster_instance_config(str(folder))     # validated against Dagster's own schema
    monitoring = config["run_monitoring"]
    assert monitoring["enabled"] is True
    assert monitoring["max_runtime_seconds"] > 0          # the default launcher's only guard for STARTED
    assert monitoring["start_timeout_seconds"] > 0 and monitoring["cancel_timeout_seconds"] > 0
