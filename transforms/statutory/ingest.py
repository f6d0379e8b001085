"""A statutory return staged like any other social-care feed.

The readers give canonical `sc_persons` / `sc_episodes` frames; this pseudonymises them with the
same tokens as the case-management extract (so a child in both is one record, linked by LA child
id) and validates them against the same staged contracts. Persons read from a return carry no
names; the extract wins wherever it has the same person (the caller writes return persons only
where the extract has none).
"""
from __future__ import annotations

import pandas as pd

from sharing.keys import KeyRing
from transforms.ingest import _stage_frame, IngestResult, QuarantinedRow
from transforms.statutory.cin_census import read_cin_census
from transforms.statutory.episode_ids import pseudonymise_episode_ids
from transforms.statutory.ssda903 import read_ssda903_episodes, read_ssda903_header
from transforms.validate import validate_staged

READERS = {
    "cin-census": read_cin_census,
    "ssda903-header": read_ssda903_header,
    "ssda903-episodes": read_ssda903_episodes,
}
_TABLES = {"sc_persons": "staged_sc_persons", "sc_episodes": "staged_sc_episodes"}


def ingest_return(data: bytes, *, reader: str, file_name: str, source_id: str, file_id: str,
                  keys: KeyRing) -> IngestResult:
    """Read one return file and stage its persons and episodes; rows read = staged + quarantined."""
    read = READERS[reader](data, file_name=file_name)
    quarantined = [QuarantinedRow(*q) for q in read.quarantined]
    staged: dict[str, pd.DataFrame] = {}
    for feed, frame in read.feed_frames.items():
        if frame.empty:
            continue
        if feed == "sc_episodes":
            frame = pseudonymise_episode_ids(frame, keys.token_key)
        rows, _ = _stage_frame(feed, frame.reset_index(drop=True), {}, keys, source_id, file_id)
        valid, failures = validate_staged(_TABLES[feed], rows)
        quarantined += failures
        staged[_TABLES[feed]] = valid
    main = "staged_sc_persons" if reader != "ssda903-episodes" else "staged_sc_episodes"
    main_frame = staged.pop(main, pd.DataFrame(columns=["row_number"]))
    return IngestResult(main, main_frame, quarantined, [], read.rows_read, read.file_error, staged)
