"""What reading one statutory-return file yields: canonical frames, quarantine entries, counts.

Row numbers are 1-based: the n-th `Child` element of a CIN census, the n-th data record (after the
header) of an SSDA903 CSV. Every row read is either represented in the frames or quarantined, never
both and never neither: `rows_read == rows_staged + rows_quarantined`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from schemas.feeds import FEEDS

# Canonical fields in feed order, plus where each row came from.
PERSON_COLUMNS: tuple[str, ...] = (*FEEDS["sc_persons"], "row_number")
EPISODE_COLUMNS: tuple[str, ...] = (*FEEDS["sc_episodes"], "row_number")

XML_DECLARATIONS_REFUSED = "XML with DTD/entity declarations refused (possible XML bomb or external entity)"

# (row_number or None for the whole file, field or None, reason naming no identity value, raw bytes)
Quarantined = tuple[int | None, str | None, str, bytes]


@dataclass
class ReturnRead:
    """The outcome of reading one statutory-return file."""

    feed_frames: dict[str, pd.DataFrame]
    quarantined: list[Quarantined] = field(default_factory=list)
    rows_read: int = 0
    file_error: str | None = None

    @property
    def rows_staged(self) -> int:
        """Distinct source rows represented in at least one frame."""
        rows: set[int] = set()
        for frame in self.feed_frames.values():
            rows.update(int(n) for n in frame["row_number"])
        return len(rows)

    @property
    def rows_quarantined(self) -> int:
        """Distinct source rows quarantined (a row may be quarantined for several fields)."""
        return len({row for row, *_ in self.quarantined if row is not None})


def persons_frame(records: list[dict]) -> pd.DataFrame:
    """Canonical sc_persons frame; identity fields a return does not carry are present and None."""
    frame = pd.DataFrame([{col: rec.get(col) for col in PERSON_COLUMNS} for rec in records],
                         columns=list(PERSON_COLUMNS), dtype=object)
    frame["restricted"] = frame["restricted"].map(bool).astype(bool)
    frame["row_number"] = frame["row_number"].astype("int64")
    return frame


def episodes_frame(records: list[dict]) -> pd.DataFrame:
    """Canonical sc_episodes frame."""
    frame = pd.DataFrame([{col: rec.get(col) for col in EPISODE_COLUMNS} for rec in records],
                         columns=list(EPISODE_COLUMNS), dtype=object)
    frame["row_number"] = frame["row_number"].astype("int64")
    return frame


def file_refused(feeds: tuple[str, ...], reason: str, data: bytes, *, file_name: str,
                 field_name: str | None = None) -> ReturnRead:
    """A file that cannot be read as a whole: no rows read, one quarantine entry for the file."""
    frames = {
        feed: (persons_frame([]) if feed == "sc_persons" else episodes_frame([])) for feed in feeds
    }
    return ReturnRead(frames, [(None, field_name, reason, data)], rows_read=0,
                      file_error=f"{file_name}: {reason}")
