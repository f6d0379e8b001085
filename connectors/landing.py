"""Landing: every file exactly as received, encrypted at rest, checksummed, in the manifest.

A file is known by the sha256 of its bytes (`file_id`), so receiving the same bytes again — under
any name, from any transport — changes nothing. The copy on disk is the AES-GCM envelope of
`sharing.crypto`, never plaintext: a school's register names children. The file name a source
used is only recorded, never used as a path. Rows that fail validation go to `quarantine` with
their raw bytes encrypted the same way; softer findings go to `data_quality_issues`.

Re-staging (`tether restage`) re-reads a landed file under the current layout. What the earlier
reading found and the new one does not is kept, stamped `superseded_at`, never deleted: history
stays, and only rows in force (`superseded_at` null) count anywhere.
"""
from __future__ import annotations

import hashlib
import os
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterable
from zoneinfo import ZoneInfo

from sqlalchemy import and_, update

from connectors.store import Store, to_utc
from schemas.tables import data_quality_issues, landing_manifest, quarantine
from sharing.crypto import decrypt, encrypt
from sharing.private_files import create_private, private_dir

_LONDON = ZoneInfo("Europe/London")
_SAFE_SOURCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_ERROR_LIMIT = 4000


@dataclass(frozen=True)
class LandedFile:
    file_id: str          # sha256 hex of the plaintext bytes
    source_id: str
    file_name: str        # as the source named it (recorded only)
    layout: str | None
    landing_path: str     # relative to the landing root: <source_id>/<yyyy-mm-dd>/<file_id>.bin
    size_bytes: int
    received_at: datetime
    is_new: bool


class Landing:
    """The landing area under `root`, with its manifest in the store."""

    def __init__(self, root: Path, store: Store, identity_key: bytes):
        self.root = Path(root)
        self.store = store
        self._key = identity_key

    def __repr__(self) -> str:
        return f"Landing({str(self.root)!r})"

    # -- receiving ----------------------------------------------------------------------------

    def receive(self, source_id: str, file_name: str, data: bytes, *, layout: str | None,
                received_at: datetime) -> LandedFile:
        """Land one file; the same bytes again (under any name) return `is_new=False` and write nothing.

        The copy goes to `<root>/<source_id>/<yyyy-mm-dd>/<file_id>.bin` (the day it was received,
        in Europe/London), written to a temporary name and renamed into place, then recorded in
        the manifest with status `landed`.
        """
        check_source_id(source_id)
        check_file_name(file_name)
        file_id = hashlib.sha256(data).hexdigest()
        known = self.entry(file_id)
        if known is not None:
            return _landed(known, is_new=False)
        received = to_utc(received_at)
        day = received.astimezone(_LONDON).date().isoformat()
        relative = PurePosixPath(source_id, day, f"{file_id}.bin")
        path = self.root / relative
        _write_atomically(path, encrypt(self._key, data))
        row = {
            "file_id": file_id, "source_id": source_id, "file_name": file_name, "layout": layout,
            "received_at": received, "size_bytes": len(data), "landing_path": str(relative),
            "status": "landed",
        }
        if self.store.insert(landing_manifest, [row], ignore_conflicts=True) == 0:
            # another process landed the same bytes meanwhile; keep its copy and record
            winner = self.entry(file_id)
            if winner is not None and winner["landing_path"] != str(relative):
                path.unlink(missing_ok=True)
            return _landed(winner, is_new=False)
        return _landed(row, is_new=True)

    def read(self, file_id: str) -> bytes:
        """The bytes as received, decrypted and checked against their checksum."""
        entry = self._require(file_id)
        data = decrypt(self._key, (self.root / entry["landing_path"]).read_bytes())
        if hashlib.sha256(data).hexdigest() != file_id:
            raise ValueError(f"landed file {file_id} ({entry['source_id']}) does not match its checksum")
        return data

    # -- the manifest -------------------------------------------------------------------------

    def entry(self, file_id: str) -> dict | None:
        """The manifest row of a file, or None if it never landed."""
        rows = self.store.records(landing_manifest, landing_manifest.c.file_id == file_id)
        return rows[0] if rows else None

    def pending(self, source_id: str | None = None) -> list[dict]:
        """Manifest rows still waiting to be staged (status `landed`), oldest first."""
        where = landing_manifest.c.status == "landed"
        if source_id is not None:
            where = where & (landing_manifest.c.source_id == source_id)
        order = [landing_manifest.c.received_at, landing_manifest.c.file_name, landing_manifest.c.file_id]
        return self.store.records(landing_manifest, where, order_by=order)

    def mark_staged(self, file_id: str, *, rows_read: int, rows_staged: int, rows_quarantined: int,
                    rows_superseded: int = 0, at: datetime | None = None) -> None:
        """Record that a file went through staging, with its reconciliation counts
        (rows read = staged + superseded + quarantined)."""
        self._set(file_id, status="staged", rows_read=rows_read, rows_staged=rows_staged,
                  rows_quarantined=rows_quarantined, rows_superseded=rows_superseded,
                  staged_at=to_utc(at or datetime.now(timezone.utc)), error=None)

    def mark_failed(self, file_id: str, error: str) -> None:
        """Record that a file could not be staged; `error` must already be scrubbed of identity."""
        self._set(file_id, status="failed", error=str(error)[:_ERROR_LIMIT])

    # -- re-staging ---------------------------------------------------------------------------

    def read_through(self, source_id: str) -> list[dict]:
        """Manifest rows of the source that have been through staging (staged or failed), oldest first."""
        where = (landing_manifest.c.source_id == source_id) & landing_manifest.c.status.in_(["staged", "failed"])
        order = [landing_manifest.c.received_at, landing_manifest.c.file_name, landing_manifest.c.file_id]
        return self.store.records(landing_manifest, where, order_by=order)

    def restageable(self, source_id: str) -> list[dict]:
        """Files of the source that failed, or whose every row read was quarantined, oldest first:
        what `tether restage` re-reads by default once a layout is fixed."""
        return [e for e in self.read_through(source_id) if refused_whole(e)]

    def supersede(self, file_id: str, *, keep_quarantine: Callable[[dict], bool],
                  keep_issues: Callable[[dict], bool], at: datetime) -> tuple[int, int]:
        """Stamp `superseded_at` on the file's quarantine rows and data-quality issues in force that
        the `keep_*` predicates do not keep (each gets the stored row). Returns (rows, issues)."""
        stamp = to_utc(at)
        counts = []
        with self.store.begin() as conn:
            for table, key, keep in ((quarantine, "quarantine_id", keep_quarantine),
                                     (data_quality_issues, "issue_id", keep_issues)):
                stale = [r[key] for r in self.in_force(table, file_id) if not keep(r)]
                for start in range(0, len(stale), 500):
                    conn.execute(update(table).where(table.c[key].in_(stale[start:start + 500]))
                                 .values(superseded_at=stamp))
                counts.append(len(stale))
        return counts[0], counts[1]

    def in_force(self, table, file_id: str) -> list[dict]:
        """The file's quarantine rows (or data-quality issues) not superseded by a re-staging."""
        return self.store.records(table, and_(table.c.file_id == file_id, table.c.superseded_at.is_(None)))

    def mark_restaged(self, file_id: str, *, status: str, layout: str | None, rows_read: int | None,
                      rows_staged: int | None, rows_quarantined: int | None, error: str | None,
                      at: datetime, rows_superseded: int | None = 0) -> bool:
        """Record a re-reading: the file's new status, layout, counts and error (None clears it).

        The earlier error stays in the superseded whole-file quarantine row. Nothing is written
        (not even `restaged_at`) when the reading found what the manifest already says: re-staging
        twice changes nothing the second time. Returns whether the manifest changed.
        """
        values = {"status": status, "layout": layout, "rows_read": rows_read, "rows_staged": rows_staged,
                  "rows_quarantined": rows_quarantined, "rows_superseded": rows_superseded,
                  "error": None if error is None else str(error)[:_ERROR_LIMIT]}
        entry = self._require(file_id)
        if all(entry[k] == v or (k == "rows_superseded" and not entry[k] and not v) for k, v in values.items()):
            return False
        stamp = to_utc(at)      # the file's rows are new: the contract check proves them again
        self._set(file_id, **values, staged_at=stamp, restaged_at=stamp, contract_checked_at=None)
        return True

    # -- rejected rows and findings -----------------------------------------------------------

    def quarantine(self, *, source_id: str, file_id: str, file_name: str, rows: Iterable[Any],
                   at: datetime) -> int:
        """Keep rows that failed validation, their raw bytes encrypted into `payload_enc`.

        Each row has `row_number` (None for the whole file), `field`, `reason` and `raw` (bytes or
        text). Re-quarantining the same (row, field, reason) of a file while it is in force adds
        nothing. Returns the number of rows added.
        """
        def build(item) -> dict:
            raw = _get(item, "raw")
            if isinstance(raw, str):
                raw = raw.encode("utf-8")
            return {"row_number": _get(item, "row_number"), "field": _get(item, "field"),
                    "reason": _get(item, "reason"),
                    "payload_enc": None if raw is None else encrypt(self._key, bytes(raw))}
        return self._append_for_file(quarantine, "reason", "quarantined_at", source_id, file_id,
                                     file_name, [build(item) for item in rows], at)

    def record_issues(self, *, source_id: str, file_id: str, file_name: str, issues: Iterable[Any],
                      at: datetime) -> int:
        """Record data-quality findings (row_number, field, issue) that did not stop a row.

        Recording the same (row, field, issue) of a file again while it is in force adds nothing.
        Returns rows added.
        """
        built = [{"row_number": _get(i, "row_number"), "field": _get(i, "field"), "issue": _get(i, "issue")}
                 for i in issues]
        return self._append_for_file(data_quality_issues, "issue", "recorded_at", source_id, file_id,
                                     file_name, built, at)

    # -- internals ----------------------------------------------------------------------------

    def _append_for_file(self, table, text_column: str, at_column: str, source_id: str, file_id: str,
                         file_name: str, rows: list[dict], at: datetime) -> int:
        if not rows:
            return 0
        stamp = to_utc(at)
        with self.store.begin():
            # two runs recording the same file's findings at once must not both find them new
            self.store.serialise(f"{table.name}:{file_id}")
            seen = {(r["row_number"], r["field"], r[text_column]) for r in self.in_force(table, file_id)}
            fresh = []
            for row in rows:
                key = (row["row_number"], row["field"], row[text_column])
                if key not in seen:
                    seen.add(key)
                    fresh.append({"source_id": source_id, "file_id": file_id, "file_name": file_name,
                                  **row, at_column: stamp})
            return self.store.insert(table, fresh) if fresh else 0

    def _require(self, file_id: str) -> dict:
        entry = self.entry(file_id)
        if entry is None:
            raise LookupError(f"no landed file with id {file_id}")
        return entry

    def _set(self, file_id: str, **values) -> None:
        with self.store.begin() as conn:
            stmt = update(landing_manifest).where(landing_manifest.c.file_id == file_id).values(**values)
            if conn.execute(stmt).rowcount == 0:
                raise LookupError(f"no landed file with id {file_id}")


def refused_whole(entry: dict) -> bool:
    """A manifest row of a file that failed, or had every row it read quarantined."""
    if entry["status"] == "failed":
        return True
    read, staged = entry.get("rows_read"), entry.get("rows_staged")
    return entry["status"] == "staged" and bool(read) and not staged


def check_source_id(source_id: str) -> None:
    """A source id names a folder under the landing root: letters, digits, '.', '_', '-'."""
    if not isinstance(source_id, str) or not _SAFE_SOURCE.fullmatch(source_id) or ".." in source_id:
        raise ValueError("unsafe source id: use letters, digits, '.', '_' and '-' only "
                         "(no path separators or '..')")


def check_file_name(file_name: str) -> None:
    """Refuse names that could be taken for a path: separators, '..', NUL, absolute, empty.

    The message says what is wrong, not the name itself (a name may carry a child's name).
    """
    if not isinstance(file_name, str) or not file_name.strip():
        raise ValueError("unsafe file name: empty")
    if "\x00" in file_name:
        raise ValueError("unsafe file name: contains a NUL character")
    if any(ord(ch) < 32 for ch in file_name):
        raise ValueError("unsafe file name: contains a control character")
    if os.path.isabs(file_name) or re.match(r"[A-Za-z]:", file_name):
        raise ValueError("unsafe file name: an absolute path")
    if "/" in file_name or "\\" in file_name:
        raise ValueError("unsafe file name: contains a path separator")
    if ".." in file_name:
        raise ValueError("unsafe file name: contains '..'")


def _write_atomically(path: Path, blob: bytes) -> None:
    """Write to a temporary name (0600 from its first byte, in 0700 folders), then rename."""
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with os.fdopen(create_private(tmp, exclusive=True), "wb") as handle:
            handle.write(blob)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _landed(row: dict, *, is_new: bool) -> LandedFile:
    return LandedFile(
        file_id=row["file_id"], source_id=row["source_id"], file_name=row["file_name"],
        layout=row["layout"], landing_path=row["landing_path"], size_bytes=int(row["size_bytes"]),
        received_at=to_utc(row["received_at"]), is_new=is_new,
    )


def _get(item: Any, name: str):
    if isinstance(item, dict):
        return item.get(name)
    return getattr(item, name, None)
