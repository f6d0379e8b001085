"""Opening the deployment's store from `TETHER_DATABASE_URL`, and creating it once (`tether init`).

A run opens the store that `tether init` created: a SQLite file that does not exist is refused
(opening it would silently create an empty store, and every school would be reported late), as
is a URL SQLAlchemy cannot use. Messages never echo a password.
"""
from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from connectors.store import Store
from schemas.errors import ConfigError

VARIABLE = "TETHER_DATABASE_URL"
EXAMPLES = "sqlite:////var/lib/tether/tether.sqlite or postgresql+psycopg2://tether@db.example.gov.uk/tether"
# backend -> the drivers installed with Tether (None: SQLAlchemy's default driver for the backend)
SUPPORTED = {"sqlite": (None, "pysqlite"), "postgresql": (None, "psycopg2")}


def check_database_url(url: str | None, *, must_exist: bool = True) -> URL:
    """The parsed store URL, or ConfigError saying what to write instead.

    Refused: no URL; `postgres://` (SQLAlchemy's name is `postgresql`); a backend or driver Tether
    does not ship; an in-memory SQLite store; and, unless `must_exist` is false (`tether init`), a
    SQLite file that does not exist yet.
    """
    if not url or not url.strip():
        raise ConfigError(f"{VARIABLE} is not set; set it to the store, e.g. {EXAMPLES}")
    scheme = url.split(":", 1)[0]
    if scheme == "postgres" or scheme.startswith("postgres+"):
        raise ConfigError(f"{VARIABLE}: the scheme 'postgres://' is not understood by SQLAlchemy; write "
                          f"postgresql+psycopg2:// instead (e.g. postgresql+psycopg2://tether@db.example.gov.uk/tether)")
    try:
        parsed = make_url(url.strip())
    except ArgumentError:
        raise ConfigError(f"{VARIABLE} is not a database URL (scheme {scheme!r}); write e.g. {EXAMPLES}") from None
    backend = parsed.get_backend_name()
    driver = parsed.drivername.partition("+")[2] or None
    if backend not in SUPPORTED:
        raise ConfigError(f"{VARIABLE}: the scheme {parsed.drivername!r} is not supported; expected one of "
                          f"sqlite:///, postgresql+psycopg2:// (e.g. {EXAMPLES})")
    if driver not in SUPPORTED[backend]:
        expected = ", ".join(f"{backend}+{d}://" for d in SUPPORTED[backend] if d)
        raise ConfigError(f"{VARIABLE}: the driver {parsed.drivername!r} is not installed with Tether; "
                          f"expected {expected}")
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise ConfigError(f"{VARIABLE}: an in-memory SQLite store keeps nothing between runs; name a file, "
                              f"e.g. sqlite:////var/lib/tether/tether.sqlite")
        path = Path(parsed.database)
        if must_exist and not path.is_file():
            raise ConfigError(f"{VARIABLE}: the SQLite store {path} does not exist; run `tether init` to create "
                              f"it (or correct the path)")
    return parsed


def open_store(url: str | None) -> Store:
    """The deployment's existing store, migrated to the newest revision (a run's store)."""
    parsed = check_database_url(url)
    store = Store(url.strip())
    store.migrate()     # an unreachable server raises OperationalError: the CLI names it in one line
    return store


def init_store(url: str | None, data_dir: str | Path | None = None) -> tuple[Store, bool]:
    """Create (or bring up to date) the store at `url`; returns it and whether it was new.

    A new SQLite file is created with its folder, both owner-only; `data_dir` (landing copies,
    poll state) is created owner-only (0700) too. An existing store is only migrated.
    """
    parsed = check_database_url(url, must_exist=False)
    url = url.strip()
    if data_dir is not None:
        _private_folder(Path(data_dir))
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database)
        is_new = not path.exists()
        _private_folder(path.parent)
        store = Store(url)
        store.migrate()
        if is_new:
            os.chmod(path, 0o600)
        return store, is_new
    store = Store(url)
    with store.engine.connect() as conn:
        is_new = not inspect(conn).has_table("alembic_version")
    store.migrate()
    return store, is_new


def _private_folder(path: Path) -> None:
    """The folder, created if missing; a folder this creates is readable by its owner only."""
    missing = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    if missing:
        os.chmod(path, 0o700)
