"""Landing from SFTP and ODBC sources: the connectors fetch, landing keeps the bytes once.

A source that is down raises here, so its own landing asset fails with the connector's message
while every other source keeps flowing.
"""
from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from connectors.arrivals import figures as unlanded_figures
from connectors.odbc import OdbcSource, overlap_record, overlap_seen, pull, watermark_get, watermark_set
from connectors.sftp import SftpEndpoint, poll_endpoint
from connectors.sftp_state import LANDED, OBSERVED, name_key, poll_state_get, poll_state_set
from connectors.unlanded import record_unlanded
from schemas.config import ConfigError, Source

from orchestration.resources import TetherContext


def sftp_endpoint(source: Source) -> SftpEndpoint:
    """The SFTP endpoint of a source; its secrets and host come from the environment as configured."""
    options = {**source.options, "files": [{"pattern": f.pattern} for f in source.files]}
    return SftpEndpoint.from_source_options(source.source_id, options, os.environ)


def legacy_sftp_state_path(ctx: TetherContext, source: Source) -> Path:
    """Where Tether before the store kept a source's SFTP poll state (taken into the store on first use)."""
    return ctx.data_dir / "state" / f"{source.source_id}.sftp.json"


def sftp_state_key(ctx: TetherContext):
    """How the stored poll state knows a file: a keyed HMAC of its name (connectors.sftp_state)."""
    token_key = ctx.keys.token_key
    return lambda name: name_key(token_key, name)


def sftp_poll_state(ctx: TetherContext, source: Source, *, adopt_file: bool) -> dict:
    """The source's SFTP poll state from the store, files known by `sftp_state_key`.

    A JSON state file left in the data folder by an earlier Tether is read too when the store has
    no state for the source yet (a state in the store wins). With `adopt_file` (a landing, which
    holds the source's landing lock) the state is written to the store and the file removed;
    without (a sensor tick) the file is only read.
    """
    state = poll_state_get(ctx.store, source.source_id)
    legacy = legacy_sftp_state_path(ctx, source)
    if not legacy.exists():
        return state
    if not (state[OBSERVED] or state[LANDED]):      # the store has none yet: the file's is the state
        key, old = sftp_state_key(ctx), json.loads(legacy.read_text())
        state = {OBSERVED: {key(name): seen for name, seen in old.get(OBSERVED, {}).items()},
                 LANDED: {key(name): pair for name, pair in old.get(LANDED, {}).items()}}
    if adopt_file:
        poll_state_set(ctx.store, source.source_id, state, dt.datetime.now(dt.timezone.utc))
        legacy.unlink()
        try:
            legacy.parent.rmdir()       # the state folder held nothing else
        except OSError:
            pass
    return state


def land_sftp(ctx: TetherContext, source: Source) -> dict:
    """One poll of the SFTP folder: complete files are downloaded, landed once, then archived or left.

    The poll state (stability observations, files left in place) is kept in the store, so that a
    file is never taken while it is still being written, and never downloaded twice, whichever
    machine or pod runs the next poll.
    """
    endpoint = sftp_endpoint(source)
    state = sftp_poll_state(ctx, source, adopt_file=True)
    received_at = dt.datetime.now(dt.timezone.utc)

    def deliver(name: str, data: bytes) -> bool:
        return ctx.landing.receive(source.source_id, name, data, layout=source.layout_for(name),
                                   received_at=received_at).is_new

    try:
        result = poll_endpoint(endpoint, deliver=deliver, state=state, state_key=sftp_state_key(ctx))
    finally:
        poll_state_set(ctx.store, source.source_id, state, received_at)
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
