"""A local landing folder as a source: which files there are complete and safe to land.

Schools and case-management systems drop exports into a shared folder; a file still being
written must not be landed half-way. A file counts as complete when its sender says so with a
`<name>.done` companion, or when it has not changed for `stable_seconds`. Hidden files and the
usual in-progress names (`.part`, `.tmp`) and the `.done` markers themselves are never offered.
"""
from __future__ import annotations

import fnmatch
import time
from pathlib import Path

_IGNORED_SUFFIXES = (".part", ".tmp", ".done")


def complete_files(folder: Path, patterns: list[str], *, stable_seconds: float = 0,
                   now: float | None = None) -> list[Path]:
    """Files in `folder` (not its subfolders) matching any glob in `patterns`, complete, by name.

    Patterns match case-insensitively (`*.csv` finds `REG.CSV`). A file without a `.done`
    companion is complete when its modification time is at least `stable_seconds` before `now`
    (seconds since the epoch; the current time when not given).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"landing folder {folder} does not exist or is not a folder")
    now = time.time() if now is None else now
    lowered = [p.lower() for p in patterns]
    found = []
    for path in folder.iterdir():
        name = path.name
        if name.startswith(".") or name.lower().endswith(_IGNORED_SUFFIXES):
            continue
        if not any(fnmatch.fnmatchcase(name.lower(), p) for p in lowered):
            continue
        try:
            stat = path.stat()
        except FileNotFoundError:  # moved away while we looked
            continue
        if not path.is_file():
            continue
        done = path.with_name(name + ".done").is_file()
        if done or stat.st_mtime <= now - stable_seconds:
            found.append(path)
    return sorted(found, key=lambda p: p.name)
