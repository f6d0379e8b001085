"""Every stage of a run in order, without Dagster, through the same locks and crash points as the
assets (`orchestration.locks.run_exclusively`): `python -m tests.integration.fault_driver` in a
process the fault suite may kill. Configured by the TETHER_* environment like `tether run`."""
from __future__ import annotations

import os

from orchestration import stages
from orchestration.locks import run_exclusively
from orchestration.resources import TetherContext


def run_all_stages(ctx: TetherContext) -> None:
    for source in ctx.config.sources.values():
        run_exclusively(ctx, "land", stages.land_source, source, source=source.source_id)
    for source in ctx.config.sources.values():
        run_exclusively(ctx, "stage", stages.stage_source, source, source=source.source_id)
    for stage, fn in (("link", stages.link), ("record", stages.build_record), ("measures", stages.compute_measures),
                      ("cohorts", stages.compute_cohorts), ("flags", stages.raise_flags),
                      ("deliveries", stages.queue_deliveries)):
        run_exclusively(ctx, stage, fn)


def context_from_env() -> TetherContext:
    return TetherContext(os.environ["TETHER_DATABASE_URL"], os.environ["TETHER_CONFIG_DIR"],
                         os.environ["TETHER_DATA_DIR"], os.environ.get("TETHER_AS_OF"))


if __name__ == "__main__":
    run_all_stages(context_from_env())
