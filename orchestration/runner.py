"""Run Tether's assets through Dagster in-process, with a short progress line per step."""
from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import dagster as dg

from sharing.private_files import create_private, private_dir


class _ProgressHandler(logging.Handler):
    """Prints one line per finished or failed step; Dagster's own event stream stays in its storage."""

    def __init__(self, stream):
        super().__init__()
        self.stream = stream
        self.started = time.monotonic()

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "dagster_meta", {}).get("dagster_event") if hasattr(record, "dagster_meta") else None
        if event is None:
            return
        kind = getattr(event, "event_type_value", "")
        step = getattr(event, "step_key", None) or ""
        if kind in ("STEP_SUCCESS", "STEP_FAILURE", "ASSET_CHECK_EVALUATION"):
            elapsed = time.monotonic() - self.started
            if kind == "ASSET_CHECK_EVALUATION":
                data = event.event_specific_data
                if data.passed:
                    return
                label = f"check {data.check_name} on {'/'.join(data.asset_key.path)}: FAILED ({data.severity.value})"
            else:
                label = f"{step.replace('__', '/')}: {'done' if kind == 'STEP_SUCCESS' else 'FAILED'}"
            print(f"  [{elapsed:6.1f}s] {label}", file=self.stream, flush=True)


def progress_logger(stream=sys.stderr) -> dg.LoggerDefinition:
    @dg.logger(description="one line per finished step")
    def _progress(_init_context):
        log = logging.getLogger("tether.progress")
        log.handlers = [_ProgressHandler(stream)]
        log.setLevel(logging.DEBUG)
        log.propagate = False
        return log
    return _progress


def instance() -> dg.DagsterInstance:
    """The Dagster instance at $DAGSTER_HOME (runs show in `make dev`), created if needed."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        home = str(Path("dagster_home").resolve())
        os.environ["DAGSTER_HOME"] = home
    private_dir(Path(home))
    config = Path(home) / "dagster.yaml"
    if not config.exists():
        try:
            with os.fdopen(create_private(config, exclusive=True), "w") as handle:
                handle.write("telemetry:\n  enabled: false\n")
        except FileExistsError:     # another process wrote it meanwhile
            pass
    return dg.DagsterInstance.get()


def run_job(job_name: str = "full_refresh", *, stream=sys.stderr) -> dg.ExecuteInProcessResult:
    """Execute a job of the current configuration in-process; raises if a step or blocking check fails."""
    from orchestration.definitions import build_definitions
    from schemas.config import load_config

    defs = build_definitions(load_config(os.environ.get("TETHER_CONFIG_DIR") or None))
    run_config = {"loggers": {"progress": {}}}

    def execute(name: str) -> dg.ExecuteInProcessResult:
        job = defs.resolve_job_def(name).with_logger_defs({"progress": progress_logger(stream)})
        return job.execute_in_process(instance=instance(), raise_on_error=False, run_config=run_config)

    result = execute(job_name)
    if sources_failed_alone(result):
        print("  a source failed: rebuilding the record, signals, flags and outbox from what the other "
              "sources delivered", file=stream, flush=True)
        execute(RECORD_REFRESH)
    return result


RECORD_REFRESH = "record_refresh"


def sources_failed_alone(result) -> bool:
    """True when the only failed steps are sources' landing or staging: the shared record must
    still be rebuilt from every other source (one source down never stops flags for the rest)."""
    failed = {e.step_key for e in result.get_step_failure_events()}
    return bool(failed) and all(key.split("__")[0] in ("landing", "staged") for key in failed)
