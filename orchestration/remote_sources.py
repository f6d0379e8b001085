"""Landing from SFTP and ODBC sources: the connectors fetch, landing keeps the bytes once.

A source that is down raises here, so its own landing asset fails with the connector's message
while every other source keeps flowing.
"""
from __future__ import annotations

import datetime as dt
import json
import os

from connectors.arrivals import figures as unlanded_figures
from connectors.odbc import OdbcSource, overlap_record, overlap_seen, pull, watermark_get, watermark_set
from connectors.sftp import SftpEndpoint, poll_endpoint
from connectors.unlanded import record_unlanded
from schemas.config import ConfigError, Source
from sharing.private_files import create_private, private_dir

from orchestration.resources import TetherContext


def sftp_endpoint(source: Source) -> SftpEndpoint:
    """The SFTP endpoint of a source; its secrets and host come from the environment as configured."""
    options = {**source.options, "files": [{"pattern": f.pattern} for f in source.files]}
    return SftpEndpoint.from_source_options(source.source_id, options, os.environ)


def sftp_state_path(ctx: TetherContext, source: Source):
    """The SFTP poll state (stability observations, files landed and left in place)."""
    return ctx.data_dir / "state" / f"{source.source_id}.sftp.json"


def land_sftp(ctx: TetherContext, source: Source) -> dict:
    """One poll of the SFTP folder: complete files are downloaded, landed once, then archived or left.

    The poll state (stability observations, files left in place) is kept beside the landing area
    so that a file is never taken while it is still being written, and never downloaded twice.
    """
    endpoint = sftp_endpoint(source)
    state_path = sftp_state_path(ctx, source)
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    received_at = dt.datetime.now(dt.timezone.utc)

    def deliver(name: str, data: bytes) -> bool:
        return ctx.landing.receive(source.source_id, name, data, layout=source.layout_for(name),
                                   received_at=received_at).is_new

    try:
        result = poll_endpoint(endpoint, deliver=deliver, state=state)
    finally:
        private_dir(state_path.parent)     # the state names files, and a name may name a child
        tmp = state_path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        with os.fdopen(create_private(tmp, exclusive=True), "w") as handle:
            handle.write(json.dumps(state))
        os.replace(tmp, state_path)
    record_unlanded(ctx.store, source.source_id, result.unlanded, received_at)
    return {"files_in_folder": result.files_seen, "files_new": len(result.taken),
            "files_already_landed": len(result.already_landed),
            "files_incomplete": len(result.skipped_incomplete), "files_done_markers": result.done_markers,
            **unlanded_figures(result.unlanded), "file_errors": result.errors}


def land_odbc(ctx: TetherContext, source: Source) -> dict:
    """Incremental pulls of the pupils and marks relations from the watermark kept in the store.

    Each chunk is landed as an extract file, and its watermark and overlap fingerprints stored, in
    one store transaction: a pull interrupted half way resumes from the last landed chunk with
    nothing lost or doubled. Rows committed late below the watermark (within the overlap window)
    are read on the next pull; rows already pulled are not landed again.
    """
    odbc = OdbcSource.from_source_options(source.source_id, source.options, os.environ)
    now = dt.datetime.now(dt.timezone.utc)
    figures = {}
    for relation in ("pupils", "marks"):
        since = watermark_get(ctx.store, source.source_id, relation)
        seen = overlap_seen(ctx.store, source.source_id, relation)
        files = rows = 0
        for extract in pull(odbc, relation, since=since, now=now, seen=seen,
                            fingerprint_key=ctx.keys.token_key):
            with ctx.store.begin():
                ctx.landing.receive(source.source_id, extract.file_name, extract.data, layout=extract.layout,
                                    received_at=now)
                overlap_record(ctx.store, source.source_id, relation, extract)
                watermark_set(ctx.store, source.source_id, relation, extract.watermark, now)
            files += 1
            rows += extract.rows
        figures[f"{relation}_extracts"] = files
        figures[f"{relation}_rows"] = rows
    return figures


def land_remote_source(ctx: TetherContext, source: Source) -> dict:
    if source.transport == "sftp":
        return land_sftp(ctx, source)
    if source.transport == "odbc":
        return land_odbc(ctx, source)
    raise ConfigError(f"sources.toml: source {source.source_id!r} has unknown transport {source.transport!r}; "
                      f"expected folder, sftp or odbc")
