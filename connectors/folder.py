"""A local landing folder as a source: which files there are complete and safe to land.

Schools and case-management systems drop exports into a shared folder; a file still being
written must not be landed half-way. A file counts as complete when its sender says so with a
`<name>.done` companion, or when it has not changed for `stable_seconds`. Hidden files, the
usual in-progress names (`.part`, `.filepart`, `.tmp`, `~`) and the `.done` markers themselves are
never offered — but every file that is not offered is accounted for (`survey_folder`): refused,
matching no pattern, or in flight, by name, so that nothing in the folder is invisible.
"""
from __future__ import annotations

import fnmatch
import time
from dataclasses import dataclass, field
from pathlib import Path

from connectors.arrivals import DEFAULT_STALE_SECONDS, DONE_SUFFIX, Unlanded, shown_name, sort_out


@dataclass
class FolderSurvey:
    """One look at a landing folder: complete files to land (by name), and every other file."""

    complete: list[Path] = field(default_factory=list)
    unlanded: list[Unlanded] = field(default_factory=list)
    done_markers: int = 0      # `.done` companions of files present (part of the protocol)

    @property
    def files_seen(self) -> int:
        return len(self.complete) + len(self.unlanded) + self.done_markers


def survey_folder(folder: Path, patterns: list[str], *, stable_seconds: float = 0,
                  now: float | None = None,
                  stale_seconds: float = DEFAULT_STALE_SECONDS) -> FolderSurvey:
    """Every file in `folder` (not its subfolders): complete and matching, or why not.

    Patterns match case-insensitively (`*.csv` finds `REG.CSV`). A file without a `.done`
    companion is complete when its modification time is at least `stable_seconds` before `now`
    (seconds since the epoch; the current time when not given). A file in flight (a temporary
    name, or not yet complete) for `stale_seconds` or more is reported as stale.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"landing folder {folder} does not exist or is not a folder")
    now = time.time() if now is None else now
    lowered = [p.lower() for p in patterns]
    survey = FolderSurvey()
    entries = {}
    for path in folder.iterdir():
        try:
            if not path.is_file():
                continue
            entries[path.name] = path.stat()
        except OSError:  # moved away while we looked
            continue
    for name, st in sorted(entries.items()):
        path = folder / name
        if name.lower().endswith(DONE_SUFFIX) and not name.startswith("."):
            companion = name[: -len(DONE_SUFFIX)]
            if companion in entries:
                survey.done_markers += 1
            else:
                survey.unlanded.append(Unlanded(shown_name(name), "unmatched",
                                                "a .done marker whose file is not in the folder",
                                                st.st_size))
            continue
        matches = any(fnmatch.fnmatchcase(name.lower(), p) for p in lowered)
        done = (name + DONE_SUFFIX) in entries
        complete = done or st.st_mtime <= now - stable_seconds
        found = sort_out(name, matches=matches, complete=complete, age_seconds=now - st.st_mtime,
                         stale_seconds=stale_seconds, size=st.st_size,
                         waiting_for=f"not yet complete (changed less than {stable_seconds:g} s ago, no .done marker)")
        if found is None:
            survey.complete.append(path)
        else:
            survey.unlanded.append(found)
    return survey


def complete_files(folder: Path, patterns: list[str], *, stable_seconds: float = 0,
                   now: float | None = None) -> list[Path]:
    """Files in `folder` (not its subfolders) matching any glob in `patterns`, complete, safe, by name."""
    return survey_folder(folder, patterns, stable_seconds=stable_seconds, now=now).complete
