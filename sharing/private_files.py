"""Owner-only folders and files for everything that holds keys, identity or pseudonymised data.

The store, landing copies, key files and Dagster's storage are readable by their owner alone from
the first byte: a file is created with its mode (`os.open(..., 0o600)`), never written and then
chmod-ed, and each folder Tether creates is 0700 (folders that already exist are left as they are).
The entry points also set a process umask of 077 (`PRIVATE_UMASK`) for what other libraries create.
"""
from __future__ import annotations

import os
from pathlib import Path

PRIVATE_UMASK = 0o077
FILE_MODE = 0o600
FOLDER_MODE = 0o700


def private_dir(path: Path) -> Path:
    """Create `path` and any missing parents as 0700 folders; returns it."""
    path = Path(path)
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=FOLDER_MODE)
        except FileExistsError:     # another process made it meanwhile
            pass
    return path


def create_private(path: Path, *, exclusive: bool = False) -> int:
    """Open `path` for writing, created 0600 if new (`exclusive`: fail if it exists); returns the fd."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else 0)
    return os.open(path, flags, FILE_MODE)
