"""Sensors, one per source endpoint, and the nightly schedule.

A folder sensor notices complete new or changed files and asks for one run of that source's
ingest job; its cursor remembers what it has asked for (name, size, mtime) and each request
carries a run key, so a file never starts two runs.
"""
from __future__ import annotations

import hashlib
import json

import dagster as dg

from connectors.folder import complete_files
from orchestration.resources import TetherResource
from schemas.config import Source


def ingest_job(source: Source) -> dg.UnresolvedAssetJobDefinition:
    selection = dg.AssetSelection.assets(dg.AssetKey(["landing", source.source_id])).downstream()
    return dg.define_asset_job(f"ingest_{source.source_id}", selection=selection,
                               description=f"Land and stage {source.source_id}, then refresh everything downstream.")


def folder_sensor(source: Source, job: dg.UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    @dg.sensor(name=f"watch_{source.source_id}", job=job, minimum_interval_seconds=60,
               description=f"Watches the landing folder of {source.source_id} for complete new files.")
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
        name="nightly_full_refresh", job=job, cron_schedule="0 2 * * *", execution_timezone="Europe/London",
        description="Every night: land and stage every source, then rebuild the record, signals and cohorts.")


def remote_sensor(source: Source, job: dg.UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    """An SFTP or ODBC endpoint is polled by its landing asset; this sensor starts one run per
    polling interval (`poll_seconds`, default 300), keyed by the interval so a tick never
    starts two."""
    interval = int(source.options.get("poll_seconds", 300))

    @dg.sensor(name=f"poll_{source.source_id}", job=job, minimum_interval_seconds=interval,
               description=f"Polls {source.source_id} ({source.transport}) every {interval} s.")
    def poll(context: dg.SensorEvaluationContext):
        import time
        bucket = int(time.time() // interval)
        return dg.RunRequest(run_key=f"{source.source_id}-{bucket}", tags={"tether/source": source.source_id})
    return poll
