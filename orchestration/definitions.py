"""The Dagster code location: `dagster dev -m orchestration.definitions`.

Sources, sensors and checks are generated from the LA's configuration folder
(`TETHER_CONFIG_DIR`); nothing connects while the definitions load. The sensors and the
nightly schedule are on by default whenever the Dagster daemon runs (see orchestration/sensors.py
for what each does and how to stop one). A launched run's steps run in parallel processes, at most
`TETHER_MAX_CONCURRENT_STEPS` at once (orchestration/executor.py).

Loading this module sets the process umask to 077: the code server, run workers and anything
they start (Dagster's run storage, the store, landing copies) create owner-only files. The
umask is process-wide by nature; a process that loads Tether's definitions is Tether's.
"""
from __future__ import annotations

import os

import dagster as dg

from orchestration.assets import all_assets
from orchestration.checks import all_checks
from orchestration.executor import step_executor
from orchestration.resources import TetherResource
from orchestration.runner import RECORD_REFRESH
from orchestration.sensors import (ingest_job, nightly_schedule, record_after_source_failure, restage_job,
                                   source_sensor)
from schemas.config import TetherConfig, load_config
from sharing.private_files import PRIVATE_UMASK

os.umask(PRIVATE_UMASK)


def build_definitions(config: TetherConfig) -> dg.Definitions:
    full_refresh = dg.define_asset_job("full_refresh", selection=dg.AssetSelection.all(),
                                       description="Every source, then the record, signals, flags and outbox.")
    record_refresh = dg.define_asset_job(
        RECORD_REFRESH, selection=dg.AssetSelection.groups("linked", "record", "signals", "flags", "outbox"),
        description="The record, signals, flags and outbox from what is already staged.")
    jobs, sensors = [full_refresh, record_refresh], [record_after_source_failure(full_refresh, record_refresh)]
    for source in config.sources.values():
        job = ingest_job(source)
        jobs += [job, restage_job(source)]
        sensors.append(source_sensor(source, job))
    return dg.Definitions(
        assets=all_assets(config),
        asset_checks=all_checks(config),
        jobs=jobs,
        schedules=[nightly_schedule(full_refresh)],
        sensors=sensors,
        executor=step_executor(),
        resources={"tether": TetherResource(
            database_url=dg.EnvVar("TETHER_DATABASE_URL"),
            config_dir=dg.EnvVar("TETHER_CONFIG_DIR"),
            data_dir=dg.EnvVar("TETHER_DATA_DIR"),
        )},
    )


defs = build_definitions(load_config(os.environ.get("TETHER_CONFIG_DIR") or None))
