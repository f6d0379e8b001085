"""Run Tether's assets through Dagster in-process, showing progress and the cause of every failure.

On a terminal the run is a live progress display (orchestration/progress.py); elsewhere one line
per finished step. After the run, each failed step is one line: the step, the error that stopped
it (scrubbed of identity) and where to read the rest (the run in the Dagster UI).
"""
from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from orchestration.progress import StepDisplay
from sharing.scrub import scrub_text

RECORD_REFRESH = "record_refresh"

# Errors whose cause is outside Tether's code and which the operator must fix before the next
# run: a key, the store, a source's connection (see the exit codes in orchestration/cli.py).
OPERATOR_ERRORS = frozenset({
    "KeyError_", "ConfigError", "OperationalError", "DBAPIError", "InterfaceError", "DatabaseError",
    "OdbcSourceError", "OdbcDriverManagerMissing", "SftpSourceError", "HostKeyError",
    "WrongKeyError", "StoreUnavailableError", "StoreBusyError",
})


class UnknownJob(LookupError):
    """No job of that name in the definitions; the message lists the jobs there are."""
from sharing.private_files import create_private, private_dir


class _ProgressHandler(logging.Handler):
    """Feeds a run's step events to the display; Dagster's own event stream stays in its storage."""

    def __init__(self, display: StepDisplay):
        super().__init__()
        self.display = display

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "dagster_meta", {}).get("dagster_event") if hasattr(record, "dagster_meta") else None
        if event is None:
            return
        kind = getattr(event, "event_type_value", "")
        step = (getattr(event, "step_key", None) or "").replace("__", "/")
        if kind == "STEP_START":
            self.display.started(step)
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE"):
            self.display.finished(step, kind == "STEP_SUCCESS")
        elif kind == "ASSET_CHECK_EVALUATION":
            data = event.event_specific_data
            if not data.passed:
                self.display.note(f"check {data.check_name} on {'/'.join(data.asset_key.path)}: "
                                  f"FAILED ({data.severity.value})")


def progress_logger(display: StepDisplay) -> dg.LoggerDefinition:
    @dg.logger(description="progress of the steps of a run in the terminal")
    def _progress(_init_context):
        log = logging.getLogger("tether.progress")
        log.handlers = [_ProgressHandler(display)]
        log.setLevel(logging.DEBUG)
        log.propagate = False
        return log
    return _progress


def dagster_home() -> Path:
    """$DAGSTER_HOME, or ./dagster_home (then exported, so Dagster finds the same instance)."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        home = str(Path("dagster_home").resolve())
        os.environ["DAGSTER_HOME"] = home
    return Path(home)


def instance() -> dg.DagsterInstance:
    """The Dagster instance at $DAGSTER_HOME (runs show in `make dev`), created if needed."""
    home = dagster_home()
    private_dir(home)
    config = home / "dagster.yaml"
    if not config.exists():
        try:
            with os.fdopen(create_private(config, exclusive=True), "w") as handle:
                handle.write("telemetry:\n  enabled: false\n")
        except FileExistsError:     # another process wrote it meanwhile
            pass
    return dg.DagsterInstance.get()


def existing_instance() -> dg.DagsterInstance | None:
    """The Dagster instance at $DAGSTER_HOME if one has been used there; None (never created) if not."""
    home = dagster_home()
    if not (home / "dagster.yaml").exists() and not (home / "storage").exists():
        return None
    return dg.DagsterInstance.get()


@dataclass(frozen=True)
class StepFailure:
    """Why one step of a run failed, in one line safe to print."""

    step: str            # e.g. "landing/school_mis_a"
    error_class: str     # the class of the innermost error, e.g. "KeyError_"
    message: str         # its message: first line, scrubbed of identity
    run_id: str

    @property
    def operator_must_fix(self) -> bool:
        """A key, the store or a source connection: not a fault in the data or in Tether."""
        return self.error_class in OPERATOR_ERRORS

    def line(self) -> str:
        return (f"{self.step} failed: {self.message} ({self.error_class}); "
                f"see the Dagster UI (make dev), run {self.run_id}")


def _root_error(error):
    while error is not None and getattr(error, "cause", None) is not None:
        error = error.cause
    return error


def _one_line(error) -> str:
    text = (getattr(error, "message", "") or "").strip().splitlines()
    first = text[0] if text else "no message"
    prefix, sep, rest = first.partition(": ")
    if sep and prefix.split(".")[-1] == getattr(error, "cls_name", None):
        first = rest       # "sharing.keys.KeyError_: ..." -> "..."
    return scrub_text(first)


def step_failures(result) -> list[StepFailure]:
    """One StepFailure per failed step of a run, from each failure event's error; a run whose
    resources could not start (a key missing, the store refused) fails as one step, "resources"."""
    out = []
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            data, step = event.step_failure_data, (event.step_key or "").replace("__", "/")
        elif event.event_type_value == "RESOURCE_INIT_FAILURE":
            data, step = event.event_specific_data, event.step_key or "resources"
        else:
            continue
        error = _root_error(data.error) if data is not None else None
        out.append(StepFailure(step=step, error_class=getattr(error, "cls_name", None) or "unknown error",
                               message=_one_line(error) if error is not None else "no error recorded",
                               run_id=result.run_id))
    return out


def run_jobs(job_name: str = "full_refresh", *, stream=sys.stderr) -> list[dg.ExecuteInProcessResult]:
    """Execute a job of the current configuration in-process, then, if only sources failed, the
    record refresh; returns every run's result. Failed steps are printed one line each."""
    from orchestration.definitions import build_definitions
    from schemas.config import load_config

    defs = build_definitions(load_config(os.environ.get("TETHER_CONFIG_DIR") or None))
    run_config = {"loggers": {"progress": {}}}
    names = sorted(j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__"))
    if job_name not in names:
        raise UnknownJob(f"there is no job {job_name!r}; the jobs are {', '.join(names)}")

    def execute(name: str) -> dg.ExecuteInProcessResult:
        job = defs.resolve_job_def(name)
        with StepDisplay(name, len(job.nodes_in_topological_order), stream) as display:
            job = job.with_logger_defs({"progress": progress_logger(display)})
            result = job.execute_in_process(instance=instance(), raise_on_error=False, run_config=run_config)
        for failure in step_failures(result):
            print(f"  {failure.line()}", file=stream, flush=True)
        return result

    results = [execute(job_name)]
    if sources_failed_alone(results[0]):
        print("  a source failed: rebuilding the record, signals, flags and outbox from what the other "
              "sources delivered", file=stream, flush=True)
        results.append(execute(RECORD_REFRESH))
    return results


def run_job(job_name: str = "full_refresh", *, stream=sys.stderr) -> dg.ExecuteInProcessResult:
    """Execute a job of the current configuration in-process (see `run_jobs`); the job's own result."""
    return run_jobs(job_name, stream=stream)[0]


def sources_failed_alone(result) -> bool:
    """True when the only failed steps are sources' landing or staging: the shared record must
    still be rebuilt from every other source (one source down never stops flags for the rest)."""
    failed = {e.step_key for e in result.get_step_failure_events()}
    return bool(failed) and all(key.split("__")[0] in ("landing", "staged") for key in failed)


def latest_check_failures(config) -> list[dict] | None:
    """The asset checks whose latest evaluation in the Dagster instance failed, or whose run failed
    before they could be evaluated; None when there is no Dagster instance at $DAGSTER_HOME."""
    found = existing_instance()
    if found is None:
        return None
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
    from orchestration.definitions import build_definitions

    keys = list(build_definitions(config).resolve_asset_graph().asset_check_keys)
    records = found.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    failures = []
    for key, record in sorted(records.items(), key=lambda kv: ("/".join(kv[0].asset_key.path), kv[0].name)):
        asset = "/".join(key.asset_key.path)
        if record.status == AssetCheckExecutionRecordStatus.FAILED:
            evaluation = record.evaluation
            severity = evaluation.severity.value if evaluation is not None else "ERROR"
            failures.append({"asset": asset, "check": key.name, "severity": severity,
                             "outcome": "failed", "run_id": record.run_id})
        elif record.status == AssetCheckExecutionRecordStatus.PLANNED:
            run = found.get_run_by_id(record.run_id)
            if run is not None and run.status == dg.DagsterRunStatus.FAILURE:
                failures.append({"asset": asset, "check": key.name, "severity": "ERROR",
                                 "outcome": "not evaluated: its run failed", "run_id": record.run_id})
    return failures
