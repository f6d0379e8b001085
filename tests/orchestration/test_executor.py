"""A launched run's steps run in parallel processes, at most TETHER_MAX_CONCURRENT_STEPS at once;
with 1, one after another in the run's own process. A bad value is refused in one line."""
import dagster as dg
import pytest

from orchestration.executor import MAX_CONCURRENT_ENV, max_concurrent_steps, step_executor
from schemas.config import ConfigError
from tests.orchestration.test_definitions import _defs


def test_steps_run_in_parallel_processes_by_default(tmp_path, monkeypatch):
    monkeypatch.delenv(MAX_CONCURRENT_ENV, raising=False)
    assert max_concurrent_steps() is None                      # Dagster's default: the CPU count
    defs = _defs(tmp_path)
    for job in ("full_refresh", "record_refresh", "ingest_school_mis_a", "restage_camhs"):
        assert defs.resolve_job_def(job).executor_def.name == "multiprocess", job


def test_the_limit_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(MAX_CONCURRENT_ENV, " 4 ")
    assert max_concurrent_steps() == 4
    assert step_executor().name == "multiprocess"
    monkeypatch.setenv(MAX_CONCURRENT_ENV, "1")
    assert step_executor() is dg.in_process_executor
    assert _defs(tmp_path).resolve_job_def("full_refresh").executor_def is dg.in_process_executor


@pytest.mark.parametrize("bad", ["0", "-2", "two", "1.5"])
def test_a_bad_limit_is_refused_in_one_line_saying_what_to_set(bad):
    with pytest.raises(ConfigError) as refused:
        max_concurrent_steps({MAX_CONCURRENT_ENV: bad})
    message = str(refused.value)
    assert "\n" not in message and MAX_CONCURRENT_ENV in message and repr(bad) in message
