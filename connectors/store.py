"""The store: one SQLAlchemy URL, a SQLite file by default, PostgreSQL in production.

Every stage writes here through the tables in `schemas.tables`. Writes are idempotent (an
upsert keyed by the primary key, or a replace of a derived table), use each engine's bulk path
(`COPY` on PostgreSQL, `executemany` on SQLite) and never echo the values they carry: the engine
hides bound parameters from exceptions and logs.

Times are stored in UTC. Values handed in — in frames or in `where` clauses — may be naive
(taken as UTC) or in any zone; `read` gives `DateTime` columns back as tz-aware UTC pandas
Timestamps and `Date` columns as `datetime.date`, on both engines.
"""
from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import re
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd
from alembic import command
from alembic.config import Config
from sqlalchemy import (
    BigInteger, Boolean, Column, Connection, Date, DateTime, Engine, Float, Integer, LargeBinary,
    MetaData, Table, and_, bindparam, create_engine, delete, event, func, insert, or_, select, text,
)
from sqlalchemy import types as sqltypes
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.engine import make_url
from sqlalchemy.dialects import postgresql, sqlite

import schemas
from schemas.errors import TetherError
from sharing.private_files import create_private, private_dir

MIGRATIONS = Path(schemas.__file__).parent / "migrations"
_SQLITE_BUSY_SECONDS = 30  # also set as PRAGMA busy_timeout (ms) on connect
_PG_MIGRATE_LOCK = 7_246_371  # advisory lock key held while migrating ("TETHER" on a keypad)
_PG_EXCLUSIVE_SPACE = 7_246_372  # advisory lock space of `Store.exclusive` (session locks)
_PG_SERIALISE_SPACE = 7_246_373  # advisory lock space of `Store.serialise` (transaction locks)
LOCK_WAIT_ENV = "TETHER_LOCK_WAIT_SECONDS"
LOCK_WAIT_DEFAULT = 600.0  # how long a run waits for another run's stage before giving up
_COPY_THRESHOLD = 500  # below this many rows a batched multi-row INSERT beats a temp table + COPY
_CHUNK = 5_000


def alembic_config() -> Config:
    """The alembic.ini equivalent, built in code so it works from an installed package."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


class StoreBusyError(TetherError, RuntimeError):
    """Another Tether run holds the stage this run wanted; it waited as long as it was allowed."""


class StoreUnavailableError(TetherError, ConnectionError):
    """The store could not be reached, or its connection was lost during a transaction."""


def lock_key(name: str) -> int:
    """A stable 31-bit key for a lock name (Python's hash() differs between processes)."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:4], "big") & 0x7FFF_FFFF


def lock_wait_seconds(env=os.environ) -> float:
    """How long a run waits for another run's stage: TETHER_LOCK_WAIT_SECONDS, default 600."""
    raw = env.get(LOCK_WAIT_ENV, "")
    try:
        value = float(raw) if raw.strip() else LOCK_WAIT_DEFAULT
    except ValueError:
        raise ValueError(f"{LOCK_WAIT_ENV}={raw!r}: expected a number of seconds") from None
    if value < 0:
        raise ValueError(f"{LOCK_WAIT_ENV}={raw!r}: must not be negative")
    return value


def to_utc(value: Any) -> datetime | None:
    """A tz-aware UTC datetime (naive values are taken as UTC); None for missing values."""
    if value is None or (not isinstance(value, (str, bytes)) and pd.isna(value)):
        return None
    ts = pd.Timestamp(value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.to_pydatetime()


class Store:
    """The Tether store behind one SQLAlchemy URL.

    Writes inside `with store.begin():` share that transaction (per thread); outside one, each
    call is its own transaction. On SQLite every write transaction is `BEGIN IMMEDIATE`, so
    concurrent writers queue on the 30 s busy timeout instead of failing mid-transaction.
    """

    def __init__(self, url: str):
        self.url = url
        kwargs: dict[str, Any] = {"hide_parameters": True}
        if make_url(url).get_backend_name() == "sqlite":
            kwargs["connect_args"] = {"timeout": _SQLITE_BUSY_SECONDS}
            _create_private_sqlite_file(make_url(url).database)
        else:  # sessions in UTC, so a naive datetime means UTC on PostgreSQL as on SQLite
            kwargs["connect_args"] = {"options": "-c timezone=UTC"}
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(url, **kwargs)
        self.dialect = self.engine.dialect.name
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_on_connect)
            event.listen(self.engine, "begin", _sqlite_on_begin)
            dialect = self.engine.dialect
            dialect.colspecs = {**dialect.colspecs, sqltypes.DateTime: _SQLiteUTCDateTime}
        self._local = threading.local()
        self._held: dict[str, int] = {}      # exclusive names this process holds -> depth
        self._held_guard = threading.Lock()

    def __repr__(self) -> str:
        return f"Store({self.engine.url.render_as_string(hide_password=True)!r})"

    def dispose(self) -> None:
        self.engine.dispose()

    # -- transactions -------------------------------------------------------------------------

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A write transaction; nested calls (and Store writes inside it) join the outer one."""
        current = getattr(self._local, "conn", None)
        if current is not None:
            yield current
            return
        try:
            with self.engine.connect() as conn:
                if self.dialect == "sqlite":
                    conn.execution_options(sqlite_begin="IMMEDIATE")
                with conn.begin():
                    self._local.conn = conn
                    try:
                        yield conn
                    finally:
                        self._local.conn = None
        except DBAPIError as exc:
            raise self._unavailable(exc, "the transaction was rolled back, nothing of it was kept") or exc

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        current = getattr(self._local, "conn", None)
        if current is not None:
            yield current
            return
        try:
            with self.engine.connect() as conn:
                yield conn
        except DBAPIError as exc:
            raise self._unavailable(exc, "nothing was written") or exc

    def _unavailable(self, exc: DBAPIError, outcome: str) -> StoreUnavailableError | None:
        """A lost connection or an unreachable database as one line naming the store (caused by the
        driver's error, whose text carries no bound values); None for other database errors
        (constraint violations, bad SQL), which are raised as they are."""
        if not (exc.connection_invalidated or isinstance(exc, (OperationalError, InterfaceError))):
            return None
        cause = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc.orig).__name__
        error = StoreUnavailableError(
            f"store {self.engine.url.render_as_string(hide_password=True)}: {cause[:200]}; {outcome} — "
            f"check that the database is up and run again (a rerun continues where this one stopped)")
        error.__cause__ = exc.orig if isinstance(exc.orig, BaseException) else None
        error.__suppress_context__ = True
        return error

    # -- serialising runs ---------------------------------------------------------------------

    def serialise(self, name: str) -> None:
        """Within the current `begin()` transaction, wait until no other transaction holds `name`.

        On PostgreSQL a transaction-level advisory lock (released at commit or rollback), so a
        delete-then-insert or read-then-insert of two concurrent runs cannot interleave; on SQLite
        every write transaction is `BEGIN IMMEDIATE` and so already serialised.
        """
        conn = getattr(self._local, "conn", None)
        if conn is None:
            raise RuntimeError("Store.serialise must be called inside `with store.begin():`")
        if self.dialect == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(_PG_SERIALISE_SPACE, lock_key(name))))

    @contextmanager
    def exclusive(self, name: str, *, what: str, wait_seconds: float | None = None) -> Iterator[None]:
        """Hold `name` (an asset or stage, e.g. `stage:school_mis_a`) while the block runs, so two
        Tether runs never do the same stage at once; the block's own transactions are unchanged.

        A run that finds `name` held waits up to `wait_seconds` (default TETHER_LOCK_WAIT_SECONDS,
        600) and then raises StoreBusyError naming the holder, e.g. "another Tether run is
        staging source X (tether pid 42 since 21:30:05Z on 10.0.0.5); ...". PostgreSQL: a session-level
        advisory lock on a connection of its own. SQLite: an exclusive `flock` on a file beside
        the database. Either is released when the holder's process or connection ends, however
        it ends. Re-entrant within one process.
        """
        wait = lock_wait_seconds() if wait_seconds is None else float(wait_seconds)
        with self._held_guard:
            depth = self._held.get(name, 0)
            self._held[name] = depth + 1
        try:
            if depth:
                yield
                return
            if self.dialect == "postgresql":
                with self._pg_exclusive(name, what, wait):
                    yield
            elif self._sqlite_path() is not None:
                with self._file_exclusive(name, what, wait):
                    yield
            else:               # an in-memory SQLite store has one process by definition
                yield
        finally:
            with self._held_guard:
                self._held[name] -= 1
                if not self._held[name]:
                    del self._held[name]

    def _pg_exclusive(self, name: str, what: str, wait: float):
        key = lock_key(name)
        pid = os.getpid()

        @contextmanager
        def held():
            try:
                conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            except DBAPIError as exc:
                raise self._unavailable(exc, "nothing was written") or exc
            acquired = False

            def label(value: str) -> None:
                conn.execute(select(func.set_config("application_name", value[:63], False)))
            try:
                try:
                    label(f"tether pid {pid} waiting: {what}")
                    _poll(lambda: conn.execute(select(func.pg_try_advisory_lock(_PG_EXCLUSIVE_SPACE, key))).scalar(),
                          wait, lambda: self._busy(what, wait, self._pg_holder(conn, key)))
                    acquired = True
                    # what other runs see as the holder (pg_stat_activity.application_name, 63 bytes)
                    label(f"tether pid {pid} since {datetime.now(timezone.utc):%H:%M:%SZ}: {what}")
                except DBAPIError as exc:
                    raise self._unavailable(exc, "nothing was written") or exc
                yield
            finally:
                try:
                    if acquired:
                        conn.execute(select(func.pg_advisory_unlock(_PG_EXCLUSIVE_SPACE, key)))
                    label("")
                    conn.close()
                except DBAPIError:  # the connection is gone, and the lock with it
                    conn.invalidate()
                    conn.close()
        return held()

    def _pg_holder(self, conn: Connection, key: int) -> str:
        """Who holds the lock, from its session: "tether pid N since T on ADDRESS" (or its backend)."""
        row = conn.execute(text(
            "SELECT a.pid, a.application_name, host(a.client_addr) FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
            "AND l.classid = :space AND l.objid = :key AND l.objsubid = 2"),
            {"space": _PG_EXCLUSIVE_SPACE, "key": key}).first()
        if row is None:
            return ""
        backend, application, address = row
        who = application.split(": ")[0] if application.startswith("tether pid ") else f"PostgreSQL backend {backend}"
        return f"{who} on {address}" if address else who

    def _sqlite_path(self) -> Path | None:
        database = make_url(self.url).database
        return None if not database or database == ":memory:" else Path(database)

    def _file_exclusive(self, name: str, what: str, wait: float):
        folder = self._sqlite_path().parent / f".{self._sqlite_path().name}.locks"
        path = folder / f"{re.sub(r'[^A-Za-z0-9_-]', '_', name)}-{lock_key(name):08x}.lock"

        @contextmanager
        def held():
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                def take() -> bool:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        return True
                    except BlockingIOError:
                        return False

                def holder() -> str:
                    try:
                        return json.loads(path.read_text() or "{}").get("holder", "")
                    except (OSError, ValueError):
                        return ""
                _poll(take, wait, lambda: self._busy(what, wait, holder()))
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps({"holder": _holder_label(), "what": what}).encode(), 0)
                yield
            finally:
                os.close(fd)      # releases the flock
        return held()

    @staticmethod
    def _busy(what: str, wait: float, holder: str) -> StoreBusyError:
        by = f" ({holder})" if holder else ""
        return StoreBusyError(
            f"another Tether run is {what}{by}; this run waited {wait:g} s for it — try again when it "
            f"finishes (or allow a longer wait with {LOCK_WAIT_ENV})")

    # -- schema -------------------------------------------------------------------------------

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision; a no-op when it is already there.

        Runs in one locked transaction (SQLite `BEGIN IMMEDIATE`, a PostgreSQL advisory lock),
        so two processes starting together do not both create the tables.
        """
        cfg = alembic_config()
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                if self.dialect == "postgresql":
                    conn.execute(select(func.pg_advisory_xact_lock(_PG_MIGRATE_LOCK)))
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")

    # -- writes -------------------------------------------------------------------------------

    def upsert(self, table: Table, df: pd.DataFrame, *, newer_column: str | None = None) -> int:
        """Insert new rows and update existing ones, keyed by the table's primary key.

        With `newer_column` (e.g. `staged_marks.recorded_at`) a stored row is only overwritten
        by a row whose value there is the same or later, so a re-delivered older file changes
        nothing. A row identical to the stored one is not rewritten. Duplicate keys within `df`
        collapse to the last (or, with `newer_column`, the newest) row.

        Returns the number of rows inserted or changed.
        """
        pk = [c.name for c in table.primary_key.columns]
        missing = [c for c in pk if c not in df.columns]
        if missing:
            raise ValueError(f"{table.name}: upsert needs the primary key columns {missing}")
        if newer_column is not None and newer_column not in df.columns:
            raise ValueError(f"{table.name}: newer_column {newer_column!r} is not in the frame")
        if newer_column is not None:
            df = df.sort_values(newer_column, kind="stable")
        df = df.drop_duplicates(subset=pk, keep="last")
        return self._merge(table, df, update=True, newer_column=newer_column)

    def insert(self, table: Table, df_or_rows: pd.DataFrame | Sequence[dict], *,
               ignore_conflicts: bool = False) -> int:
        """Append rows (quarantine, data quality issues, the audit log).

        With `ignore_conflicts`, rows whose primary key is already stored are skipped
        (`ON CONFLICT DO NOTHING`). Returns the number of rows inserted.
        """
        df = df_or_rows if isinstance(df_or_rows, pd.DataFrame) else pd.DataFrame(list(df_or_rows))
        if ignore_conflicts:
            pk = [c.name for c in table.primary_key.columns]
            return self._merge(table, df.drop_duplicates(subset=pk, keep="first"), update=False)
        columns, rows = _prepare(table, df, sqlite_text=self.dialect == "sqlite")
        if not rows:
            return 0
        with self.begin() as conn:
            return self._append(conn, table, columns, rows)

    def replace(self, table: Table, df: pd.DataFrame, *, where=None) -> int:
        """Rebuild a derived table (or the slice of it matching `where`) in one transaction.

        Returns the number of rows inserted.
        """
        columns, rows = _prepare(table, df, sqlite_text=self.dialect == "sqlite")
        with self.begin() as conn:
            self.serialise(f"replace:{table.name}")   # two runs' delete-then-insert never interleave
            stmt = delete(table) if where is None else delete(table).where(where)
            conn.execute(stmt)
            return self._append(conn, table, columns, rows) if rows else 0

    # -- reads --------------------------------------------------------------------------------

    def read(self, table: Table, where=None, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Rows as a typed DataFrame, ordered by primary key.

        `Date` -> `datetime.date` (None when null); `DateTime` -> datetime64[ns, UTC];
        `Boolean` -> bool, or object True/False/None when the column is nullable; `Integer` ->
        int64, or nullable Int64 when the column is nullable.
        """
        cols = [table.c[c] for c in columns] if columns else list(table.c)
        stmt = select(*cols).order_by(*table.primary_key.columns)
        if where is not None:
            stmt = stmt.where(where)
        with self._reading() as conn:
            rows = conn.execute(stmt).all()
        return pd.DataFrame({c.name: _typed(c, [r[i] for r in rows]) for i, c in enumerate(cols)},
                            columns=[c.name for c in cols])

    def records(self, table: Table, where=None, order_by=None) -> list[dict]:
        """Rows as plain dicts of Python values (datetimes tz-aware UTC), for small lookups."""
        stmt = select(table)
        if where is not None:
            stmt = stmt.where(where)
        stmt = stmt.order_by(*(order_by if order_by is not None else table.primary_key.columns))
        with self._reading() as conn:
            rows = conn.execute(stmt).mappings().all()
        datetimes = [c.name for c in table.c if isinstance(c.type, DateTime)]
        out = []
        for row in rows:
            item = dict(row)
            for name in datetimes:
                item[name] = to_utc(item[name])
            for name, value in item.items():
                if isinstance(value, memoryview):
                    item[name] = bytes(value)
            out.append(item)
        return out

    # -- engine paths -------------------------------------------------------------------------

    def _merge(self, table: Table, df: pd.DataFrame, *, update: bool,
               newer_column: str | None = None) -> int:
        columns, rows = _prepare(table, df, sqlite_text=self.dialect == "sqlite")
        if not rows:
            return 0
        pk = [c.name for c in table.primary_key.columns]
        updates = [c for c in columns if c not in pk] if update else []
        with self.begin() as conn:
            if self.dialect == "postgresql" and len(rows) >= _COPY_THRESHOLD:
                staging = self._copy_to_temp(conn, table, columns, rows)
                stmt = postgresql.insert(table).from_select(columns, select(*[staging.c[c] for c in columns]))
                return conn.execute(_on_conflict(stmt, table, pk, updates, newer_column)).rowcount
            if self.dialect == "sqlite":
                return _sqlite_executemany(conn, _on_conflict(sqlite.insert(table), table, pk, updates, newer_column),
                                           columns, rows)
            stmt = _on_conflict(postgresql.insert(table), table, pk, updates, newer_column)
            written = 0
            for chunk in _chunks(columns, rows):   # multi-row VALUES batches; count what came back
                written += len(conn.execute(stmt.returning(*table.primary_key.columns), chunk).all())
            return written

    def _append(self, conn: Connection, table: Table, columns: list[str], rows: list[tuple]) -> int:
        if self.dialect == "postgresql" and len(rows) >= _COPY_THRESHOLD:
            _copy(conn, table.name, columns, rows)
            return len(rows)
        if self.dialect == "sqlite":
            return _sqlite_executemany(conn, insert(table), columns, rows)
        for chunk in _chunks(columns, rows):
            conn.execute(insert(table), chunk)
        return len(rows)

    def _copy_to_temp(self, conn: Connection, table: Table, columns: list[str], rows: list[tuple]) -> Table:
        staging = Table(
            f"tether_load_{uuid.uuid4().hex[:16]}", MetaData(),
            *[Column(c, table.c[c].type) for c in columns],
            prefixes=["TEMPORARY"], postgresql_on_commit="DROP",
        )
        staging.create(conn)
        _copy(conn, staging.name, columns, rows)
        return staging


def _holder_label() -> str:
    """Who holds a lock: process and host, and since when (UTC), never anything about a child."""
    since = datetime.now(timezone.utc).strftime("%H:%M:%SZ")
    return f"tether pid {os.getpid()} since {since} on {socket.gethostname()}"


def _poll(attempt, wait: float, busy) -> None:
    """Call `attempt` until it returns true; after `wait` seconds raise `busy()`."""
    deadline = time.monotonic() + wait
    delay = 0.05
    while not attempt():
        left = deadline - time.monotonic()
        if left <= 0:
            raise busy()
        time.sleep(min(delay, left))
        delay = min(delay * 2, 1.0)


# -- SQLite connection set-up -------------------------------------------------------------------

def _create_private_sqlite_file(database: str | None) -> None:
    """Create a new store file owner-only (0600, in 0700 folders) before SQLite opens it; SQLite
    gives its -wal and -shm files the database file's mode, so they are owner-only too."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if path.exists():
        return
    private_dir(path.parent)
    try:
        os.close(create_private(path, exclusive=True))
    except FileExistsError:
        pass


def _sqlite_on_connect(dbapi_conn, _record) -> None:
    """WAL so readers never block the writer, a busy timeout, foreign keys; SQLAlchemy (not the
    sqlite3 module) decides when a transaction begins, so DDL is transactional too.

    `synchronous = FULL`: every commit is on disk before it returns, so a power cut never loses
    a committed audit entry or outbox row (NORMAL could lose the last commits); the cost on the
    demo is measured in BENCHMARKS.md."""
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA busy_timeout = 30000")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = FULL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA cache_size = -131072")    # 128 MiB of pages: bulk loads touch the whole key index
    cursor.close()


class _SQLiteUTCDateTime(sqlite.DATETIME):
    """SQLite keeps datetimes as text without a zone: bind every aware value as UTC (also in
    `where` clauses), and read values back as aware UTC."""

    def bind_processor(self, dialect):
        process = super().bind_processor(dialect)

        def bind(value):
            if isinstance(value, datetime) and value.tzinfo is not None:
                value = value.astimezone(timezone.utc).replace(tzinfo=None)
            return process(value) if process else value
        return bind

    def result_processor(self, dialect, coltype):
        process = super().result_processor(dialect, coltype)

        def result(value):
            value = process(value) if process else value
            return value.replace(tzinfo=timezone.utc) if isinstance(value, datetime) else value
        return result


def _sqlite_on_begin(conn: Connection) -> None:
    if conn.get_execution_options().get("sqlite_begin") == "IMMEDIATE":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


# -- statements ---------------------------------------------------------------------------------

def _on_conflict(stmt, table: Table, pk: list[str], updates: list[str], newer_column: str | None):
    if not updates:
        return stmt.on_conflict_do_nothing(index_elements=pk)
    excluded = stmt.excluded
    changed = or_(*[table.c[c].is_distinct_from(excluded[c]) for c in updates])
    condition = changed
    if newer_column is not None:
        stored = table.c[newer_column]
        condition = and_(or_(stored.is_(None), stored <= excluded[newer_column]), changed)
    return stmt.on_conflict_do_update(index_elements=pk, set_={c: excluded[c] for c in updates},
                                      where=condition)


def _sqlite_executemany(conn: Connection, stmt, columns: list[str], rows: list[tuple]) -> int:
    """SQLite's bulk path: the statement compiled once, every row bound by the sqlite3 module
    itself (`executemany`) from values already in the text SQLAlchemy would store
    (`_prepare(..., sqlite_text=True)`), so no per-value bind processing runs. Returns the rows
    inserted or changed."""
    compiled = stmt.values({c: bindparam(c) for c in columns}).compile(dialect=conn.dialect)
    position = {c: i for i, c in enumerate(columns)}
    order = [position[name] for name in compiled.positiontup]
    if order != list(range(len(columns))):
        rows = [tuple(row[i] for i in order) for row in rows]
    return conn.exec_driver_sql(str(compiled), rows).rowcount


def _chunks(columns: list[str], rows: list[tuple]) -> Iterator[list[dict]]:
    for start in range(0, len(rows), _CHUNK):
        yield [dict(zip(columns, row)) for row in rows[start:start + _CHUNK]]


# -- values in ----------------------------------------------------------------------------------

def _prepare(table: Table, df: pd.DataFrame, *, sqlite_text: bool = False) -> tuple[list[str], list[tuple]]:
    """Column names and rows of plain Python values ready to bind (None for every kind of null);
    with `sqlite_text`, dates and datetimes as the text SQLAlchemy stores in SQLite."""
    unknown = [c for c in df.columns if c not in table.c]
    if unknown:
        raise ValueError(f"{table.name}: columns not in the table: {sorted(map(str, unknown))}")
    columns = list(df.columns)
    values = [_bindable(table.c[c], df[c], sqlite_text=sqlite_text) for c in columns]
    for col in table.c:  # python-side scalar defaults (COPY would not apply them)
        if col.name not in df.columns and col.default is not None and col.default.is_scalar:
            columns.append(col.name)
            values.append([col.default.arg] * len(df))
    return columns, list(zip(*values)) if len(df) else []


def _bindable(column: Column, series: pd.Series, *, sqlite_text: bool = False) -> list:
    kind = column.type
    null = series.isna().to_numpy()
    if isinstance(kind, DateTime):
        if not len(series):
            return []
        stamps = pd.to_datetime(series, utc=True, format="mixed")
        if sqlite_text:
            texts = stamps.dt.tz_convert(None).dt.strftime("%Y-%m-%d %H:%M:%S.%f").tolist()
            return [None if n else text for text, n in zip(texts, null)]
        return [None if n else ts for ts, n in zip(stamps.array.to_pydatetime(), null)]
    if isinstance(kind, Date):
        days = [None if n else v if type(v) is date else _as_date(v, column) for v, n in zip(series.tolist(), null)]
        if sqlite_text:
            cache: dict[date, str] = {}
            return [None if d is None else cache.get(d) or cache.setdefault(d, d.isoformat()) for d in days]
        return days
    raw = series.tolist()
    if isinstance(kind, Boolean):
        return [None if n else _as_bool(v, column) for v, n in zip(raw, null)]
    if isinstance(kind, (Integer, BigInteger)):
        return [None if n else _as_int(v, column) for v, n in zip(raw, null)]
    if isinstance(kind, Float):
        return [None if n else float(v) for v, n in zip(raw, null)]
    if isinstance(kind, LargeBinary):
        return [None if n else bytes(v) for v, n in zip(raw, null)]
    return [None if n else v if type(v) is str else _as_text(v) for v, n in zip(raw, null)]


def _as_bool(value, column: Column) -> bool:
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, (int, np.integer)) and value in (0, 1)):
        return bool(value)
    raise ValueError(f"{column.table.name}.{column.name}: expected a boolean, got a {type(value).__name__}")


def _as_int(value, column: Column) -> int:
    if isinstance(value, (float, np.floating)) and not float(value).is_integer():
        raise ValueError(f"{column.table.name}.{column.name}: expected a whole number")
    return int(value)


def _as_text(value):
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _as_date(value, column: Column) -> date:
    if isinstance(value, datetime):  # also pd.Timestamp
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, np.datetime64):
        return pd.Timestamp(value).date()
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"{column.table.name}.{column.name}: expected a date (YYYY-MM-DD), "
                     f"got a {type(value).__name__}")


# -- values out ---------------------------------------------------------------------------------

def _typed(column: Column, values: list) -> pd.Series:
    kind = column.type
    if isinstance(kind, DateTime):
        return pd.Series(pd.to_datetime([to_utc(v) for v in values], utc=True), dtype="datetime64[ns, UTC]")
    if isinstance(kind, Boolean):
        if column.nullable:
            return pd.Series([None if v is None else bool(v) for v in values], dtype=object)
        return pd.Series(values, dtype=bool)
    if isinstance(kind, (Integer, BigInteger)):
        return pd.Series(values, dtype="Int64" if column.nullable else "int64")
    if isinstance(kind, Float):
        return pd.Series([np.nan if v is None else v for v in values], dtype="float64")
    if isinstance(kind, LargeBinary):
        return pd.Series([bytes(v) if isinstance(v, memoryview) else v for v in values], dtype=object)
    return pd.Series(values, dtype=object)


# -- PostgreSQL COPY ----------------------------------------------------------------------------

_TEXT_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value) -> str:
    """One value in COPY's text format (NULL is \\N)."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\\\\x" + bytes(value).hex()
    return str(value).translate(_TEXT_ESCAPES)


def _copy(conn: Connection, table_name: str, columns: list[str], rows: list[tuple]) -> None:
    from psycopg2 import sql

    buffer = io.StringIO()
    for row in rows:
        buffer.write("\t".join(map(_copy_text, row)))
        buffer.write("\n")
    buffer.seek(0)
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table_name), sql.SQL(", ").join(map(sql.Identifier, columns)))
    with conn.connection.driver_connection.cursor() as cursor:
        cursor.copy_expert(statement, buffer)
