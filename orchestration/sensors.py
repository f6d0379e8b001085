"""Sensors, one per source endpoint, and the nightly schedule — all on by default.

A folder sensor notices complete new or changed files and asks for one run of that source's
ingest job; its cursor remembers what it has asked for (name, size, mtime) and each request
carries a run key, so a file never starts two runs.

Every sensor and the schedule start RUNNING (`default_status`) as soon as the Dagster daemon runs
(`make dev`, or `dagster-daemon run` in production); nothing runs while only `tether run` is used.
All are safe to leave on: a tick only lists a folder or an SFTP directory, or asks an ODBC
database for two aggregates, and each request carries a run key, so nothing runs twice. An
operator who wants one off stops it in the Dagster UI (Automation), or with
`dagster sensor stop -m orchestration.definitions watch_<source>` /
`dagster schedule stop -m orchestration.definitions nightly_full_refresh`; a stopped state is
kept by the instance and wins over the default.
"""
from __future__ import annotations

import hashlib
import json
import os
import time

import dagster as dg

from connectors.folder import complete_files
from connectors.odbc import OdbcSource, latest_watermark, watermark_get
from connectors.sftp import list_entries
from connectors.sftp_state import LANDED
from orchestration.remote_sources import sftp_endpoint, sftp_poll_state, sftp_state_key
from orchestration.resources import TetherResource
from schemas.config import Source


def ingest_job(source: Source) -> dg.UnresolvedAssetJobDefinition:
    selection = dg.AssetSelection.assets(dg.AssetKey(["landing", source.source_id])).downstream()
    return dg.define_asset_job(f"ingest_{source.source_id}", selection=selection,
                               description=f"Land and stage {source.source_id}, then refresh everything downstream.")


def restage_job(source: Source) -> dg.UnresolvedAssetJobDefinition:
    """`restage_<source>`: re-read the source's failed files under the current layout, then refresh
    the record, signals, flags and outbox. Landing is not run: nothing new is fetched."""
    sid = source.source_id
    staged = dg.AssetKey(["staged", sid])
    return dg.define_asset_job(
        f"restage_{sid}", selection=dg.AssetSelection.assets(staged).downstream(),
        config={"ops": {staged.to_python_identifier(): {"config": {"restage": True, "file": ""}}}},
        description=(f"Re-stage {sid}: after a layout fix, re-read the landed files that failed or had every "
                     f"row quarantined, under the current configuration (set `file` in the launchpad to a "
                     f"file name, glob or file_id prefix to re-read only those, staged files with quarantined "
                     f"rows included). The old failure is superseded, kept in the store but no longer counted; "
                     f"then the record, signals, flags and outbox are refreshed. The school need not resend "
                     f"anything. Same as `tether restage --source {sid}`."))


FOLDER_INTERVAL = 60
NIGHTLY_CRON = "0 2 * * *"


def folder_sensor(source: Source, job: dg.UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    @dg.sensor(name=f"watch_{source.source_id}", job=job, minimum_interval_seconds=FOLDER_INTERVAL,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description=(f"Every {FOLDER_INTERVAL} s: lists the landing folder of {source.source_id} and asks "
                            f"for one ingest run when complete new or changed files are there. On by "
                            f"default; safe to leave on (it only lists the folder; a file never starts "
                            f"two runs)."))
    def watch(context: dg.SensorEvaluationContext, tether: TetherResource):
        ctx = tether.ctx
        folder = ctx.source_folder(source.options.get("path", source.source_id))
        if not folder.is_dir():
            return dg.SkipReason(f"landing folder {folder} does not exist")
        seen = json.loads(context.cursor) if context.cursor else {}
        stable = float(source.options.get("stable_seconds", 0))
        current = {}
        for path in complete_files(folder, [f.pattern for f in source.files], stable_seconds=stable):
            st = path.stat()
            current[path.name] = [st.st_size, int(st.st_mtime)]
        new = sorted(n for n, sig in current.items() if seen.get(n) != sig)
        if not new:
            return dg.SkipReason("no new complete files")
        run_key = hashlib.sha256(json.dumps([[n, current[n]] for n in new]).encode()).hexdigest()[:32]
        context.update_cursor(json.dumps(current))
        return dg.RunRequest(run_key=run_key, tags={"tether/source": source.source_id,
                                                   "tether/files": str(len(new))})
    return watch


def nightly_schedule(job) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name="nightly_full_refresh", job=job, cron_schedule=NIGHTLY_CRON, execution_timezone="Europe/London",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=("Every night at 02:00 Europe/London: land and stage every source, then rebuild the "
                     "record, signals, cohorts, flags and outbox (the full_refresh job). On by default; "
                     "safe to leave on (a run lands only what is new and rebuilds the rest)."))


def sftp_sensor(source: Source, job: dg.UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    """Lists the SFTP folder (no download) and asks for a run when a matching file is not yet landed.

    Files are compared with the landing asset's own poll state in the store (what it has landed and
    left in place; reading it needs the token key, as files are known by a keyed hash of their
    name). While a file waits to become stable the same request is repeated once per
    `stable_seconds`, under a new run key, so that the next poll can take it.
    """
    interval = int(source.options.get("poll_seconds", 60))

    @dg.sensor(name=f"watch_{source.source_id}", job=job, minimum_interval_seconds=interval,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description=(f"Every {interval} s (poll_seconds): lists the SFTP directory of "
                            f"{source.source_id} (no download) and asks for an ingest run when a "
                            f"complete file is not yet landed. On by default; safe to leave on once "
                            f"the source's host, key and known_hosts are configured (a tick only lists)."))
    def watch(context: dg.SensorEvaluationContext, tether: TetherResource):
        ctx = tether.ctx
        endpoint = sftp_endpoint(source)
        landed, key = sftp_poll_state(ctx, source, adopt_file=False)[LANDED], sftp_state_key(ctx)
        pending = sorted([key(e.name), e.size, e.mtime] for e in list_entries(endpoint)
                         if landed.get(key(e.name)) != [e.size, e.mtime])
        if not pending:
            return dg.SkipReason("no files waiting to be landed")
        window = int(time.time() // max(endpoint.stable_seconds, interval, 1))
        run_key = hashlib.sha256(json.dumps([pending, window]).encode()).hexdigest()[:32]
        if context.cursor == run_key:
            return dg.SkipReason("a run was already requested for these files")
        context.update_cursor(run_key)
        return dg.RunRequest(run_key=run_key, tags={"tether/source": source.source_id,
                                                   "tether/files": str(len(pending))})
    return watch


def odbc_sensor(source: Source, job: dg.UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    """Asks the MIS database for its highest watermarks (one aggregate query per relation) and
    requests a run when either has moved past what the store has pulled."""
    interval = int(source.options.get("poll_seconds", 120))

    @dg.sensor(name=f"watch_{source.source_id}", job=job, minimum_interval_seconds=interval,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description=(f"Every {interval} s (poll_seconds): asks the MIS database of "
                            f"{source.source_id} (ODBC) for its highest watermarks, one aggregate "
                            f"query per relation, and asks for an ingest run when rows are new or "
                            f"corrected. On by default; safe to leave on once the connection is "
                            f"configured (it reads no rows)."))
    def watch(context: dg.SensorEvaluationContext, tether: TetherResource):
        ctx = tether.ctx
        odbc = OdbcSource.from_source_options(source.source_id, source.options, os.environ)
        latest = {rel: latest_watermark(odbc, rel) for rel in ("pupils", "marks")}
        pulled = {rel: watermark_get(ctx.store, source.source_id, rel) for rel in latest}
        moved = [rel for rel in latest if latest[rel] is not None and latest[rel] != pulled[rel]]
        if not moved:
            return dg.SkipReason("no rows beyond the stored watermarks")
        run_key = hashlib.sha256(json.dumps(latest, sort_keys=True).encode()).hexdigest()[:32]
        if context.cursor == run_key:
            return dg.SkipReason("a run was already requested for these rows")
        context.update_cursor(run_key)
        return dg.RunRequest(run_key=run_key, tags={"tether/source": source.source_id,
                                                   "tether/relations": ",".join(moved)})
    return watch


def source_sensor(source: Source, job: dg.UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    """The sensor for a source endpoint, by transport."""
    return {"folder": folder_sensor, "sftp": sftp_sensor, "odbc": odbc_sensor}[source.transport](source, job)


def record_after_source_failure(full_refresh, record_refresh) -> dg.SensorDefinition:
    """When the nightly refresh fails only because some sources could not be landed or staged,
    rebuild the record, signals, flags and outbox from every other source."""
    from orchestration.runner import sources_failed_alone

    @dg.run_failure_sensor(name="record_after_source_failure", monitored_jobs=[full_refresh],
                           request_job=record_refresh, default_status=dg.DefaultSensorStatus.RUNNING,
                           description=("When full_refresh fails only in sources' landing or staging, "
                                        "runs record_refresh so the other sources' flags still go out. "
                                        "On by default; safe to leave on (one run per failed run)."))
    def record_after_failure(context: dg.RunFailureSensorContext):
        if sources_failed_alone(context):
            return dg.RunRequest(run_key=f"after-{context.dagster_run.run_id}")
        return dg.SkipReason("a shared step failed: fix it before rebuilding the record")
    return record_after_failure
