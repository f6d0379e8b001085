"""Pull a school MIS's pupils and attendance marks over ODBC (docs/layouts.md#school-mis-over-odbc).

Some MIS databases are reachable over ODBC: one database per school, or one hosted database for
several schools with a school column. This connector reads the two relations of docs/layouts.md#school-mis-over-odbc
(`pupils`, `marks`), mapped onto the database's own table and columns by configuration, and pulls
them incrementally by a watermark column (e.g. `last_modified`, or a SQL Server `rowversion`).

It writes nothing itself. Rows are fetched in chunks (memory stays flat on any table size) and
each chunk becomes one CSV extract per school in the built-in layouts `odbc-marks` /
`odbc-pupils`; the caller lands each extract (encrypted, manifest, idempotent by checksum) and
ingests it exactly like a file received over SFTP, and only then stores the extract's watermark
with `watermark_set`. A pull interrupted half way therefore resumes from the last stored
watermark: nothing is lost, and a chunk landed twice is the same bytes, so nothing is doubled.

A row committed late — by a long MIS transaction, with a `last_modified` earlier than rows already
pulled — would be skipped by a strict `> watermark`. Each pull therefore re-reads an overlap window
below the stored watermark (`watermark_overlap_seconds`, 600 by default, for date and datetime
watermarks; `watermark_overlap_count` for integer and rowversion ones, 0 by default) and drops the
rows it has already pulled: the caller keeps keyed fingerprints of the rows in that window
(`Extract.seen`) and passes them back (`pull(..., seen=...)`), so only rows not pulled before are
extracted and nothing is counted twice.

Every statement and fetch has a time limit (`query_timeout_seconds`, 300 by default): a query
that hangs on a lock or an overloaded server is cancelled and reported in one line, instead of
blocking the run for ever.

SQL is built from validated, quoted identifiers; values (the watermark, school filters) are only
ever bound parameters. Errors name the source, relation and what to check — never the connection
string's password, and never a value read from the database.
"""
from __future__ import annotations

import csv
import datetime as dt
import decimal
import hashlib
import hmac
import io
import math
import re
import threading
import time
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import delete, insert, select, update

from schemas.config import ConfigError
from schemas.errors import TetherError
from schemas.feeds import ODBC_RELATIONS
from schemas.tables import odbc_overlap_rows, watermarks


@dataclass(frozen=True)
class _RelationSpec:
    """A docs/layouts.md#school-mis-over-odbc relation: its fields, which must be mapped, and its natural key."""

    layout: str
    fields: tuple[str, ...]
    required: tuple[str, ...]
    keys: tuple[str, ...]


RELATIONS: dict[str, _RelationSpec] = {
    "pupils": _RelationSpec(layout="odbc-pupils", fields=ODBC_RELATIONS["pupils"][0],
                            required=ODBC_RELATIONS["pupils"][1], keys=("pupil_id",)),
    "marks": _RelationSpec(layout="odbc-marks", fields=ODBC_RELATIONS["marks"][0],
                           required=ODBC_RELATIONS["marks"][1], keys=("pupil_id", "session_date", "session")),
}

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_LAESTAB = re.compile(r"^\d{7}$")


class OdbcSourceError(TetherError, ConnectionError):
    """An ODBC source could not be read; the message names the source and what to check."""


class OdbcDriverManagerMissing(OdbcSourceError):
    """pyodbc is installed but the unixODBC driver manager (libodbc.so.2) is not."""


# pyodbc links against unixODBC's libodbc.so.2 when it is imported. It is imported on first use
# (`driver_manager()`), never when this module loads: the Dagster definitions import this module,
# and a deployment without ODBC sources (the demo) must not need the system library.
pyodbc: Any = None

DRIVER_MANAGER_HINT = ("install the unixODBC driver manager and your database's ODBC driver "
                       "(Debian/Ubuntu: `apt-get install unixodbc odbc-postgresql`, or the driver your "
                       "MIS vendor names; see docs/odbc.md)")


def driver_manager() -> Any:
    """The pyodbc module, loaded on first use; a clear error when the driver manager is missing."""
    global pyodbc
    if pyodbc is None:
        try:
            import pyodbc as module
        except ImportError as exc:
            raise OdbcDriverManagerMissing(
                f"ODBC sources need the unixODBC driver manager, which this machine lacks "
                f"({type(exc).__name__}: {exc}); {DRIVER_MANAGER_HINT}") from None
        pyodbc = module
    return pyodbc


def quote_identifier(name: str) -> str:
    """`schema.table` or `column` as a quoted SQL identifier; anything but a plain name is refused.

    Table and column names come from configuration, so they are checked against a strict pattern
    and double-quoted part by part (ANSI quoting, which PostgreSQL and SQL Server both accept).
    """
    if not isinstance(name, str) or not _IDENTIFIER.match(name) or any(p == "" for p in name.split(".")):
        raise ConfigError(f"{name!r} is not a plain table or column name (letters, digits, _ and . only)")
    return ".".join(f'"{part}"' for part in name.split("."))


@dataclass(frozen=True)
class OdbcRelation:
    """Where a docs/layouts.md#school-mis-over-odbc relation lives: its table, column mapping and watermark column."""

    table: str
    columns: dict[str, str]           # docs/layouts.md#school-mis-over-odbc name -> database column (unmapped fields absent)
    watermark_column: str = "last_modified"


@dataclass(frozen=True)
class OdbcSource:
    """One ODBC endpoint: a school's own MIS database, or a hosted database for several schools."""

    source_id: str
    connection_string: str = field(repr=False)
    pupils: OdbcRelation
    marks: OdbcRelation
    school_column: str | None = None      # multi-school database: the column holding the LAESTAB
    laestab: str | None = None            # single-school database: the school it belongs to
    chunk_rows: int = 5000
    max_retries: int = 3
    backoff_seconds: float = 2.0
    connection_env: str = ""              # the environment variable named in config, for messages
    schools: tuple[str, ...] = ()         # hosted database: pull only these schools (empty: all)
    login_timeout_seconds: int = 15
    timezone: str | None = None           # zone of the database's naive datetimes, e.g. Europe/London
    query_timeout_seconds: int = 300      # each statement and fetch; 0: no limit
    watermark_overlap_seconds: float = 600.0   # date/datetime watermarks: re-read this far below
    watermark_overlap_count: int = 0           # integer/rowversion watermarks: re-read this many below

    def relation(self, name: str) -> OdbcRelation:
        if name not in RELATIONS:
            raise ValueError(f"unknown ODBC relation {name!r}; expected one of {sorted(RELATIONS)}")
        return getattr(self, name)

    @classmethod
    def from_source_options(cls, source_id: str, options: dict, env: Mapping[str, str]) -> "OdbcSource":
        """Build a source from its `sources.toml` options; the connection comes from the environment.

        The variable named by `connection_env` holds an ODBC connection string, or just a DSN name.
        """
        where = f"sources.toml: source {source_id!r}"
        env_name = options.get("connection_env")
        if not env_name:
            raise ConfigError(f"{where}: ODBC sources need connection_env, the environment variable "
                              "holding the connection string or DSN")
        conn = env.get(env_name, "")
        if not conn.strip():
            raise ConfigError(f"{where}: environment variable {env_name} is not set; it must hold the ODBC "
                              "connection string or DSN name")
        if "=" not in conn:
            conn = f"DSN={conn.strip()};"
        school_column, laestab = options.get("school_column"), options.get("laestab")
        if bool(school_column) == bool(laestab):
            raise ConfigError(f"{where}: set exactly one of school_column (a database for several schools) "
                              "or laestab (a school's own database)")
        if laestab is not None and not _LAESTAB.match(str(laestab)):
            raise ConfigError(f"{where}: laestab must be 7 digits")
        schools = tuple(str(s) for s in options.get("schools", ()))
        if any(not _LAESTAB.match(s) for s in schools):
            raise ConfigError(f"{where}: schools must be 7-digit LAESTABs")
        tz = options.get("timezone")
        if tz:
            try:
                ZoneInfo(tz)
            except (ZoneInfoNotFoundError, ValueError):
                raise ConfigError(f"{where}: timezone {tz!r} is not a known time zone") from None
        relations = options.get("relations", {})
        unknown = set(relations) - set(RELATIONS)
        if unknown:
            raise ConfigError(f"{where}: unknown relations {sorted(unknown)}; expected {sorted(RELATIONS)}")
        built = {name: _relation_from_options(f"{where} relation {name!r}", name, relations.get(name, {}))
                 for name in RELATIONS}
        source = cls(
            source_id=source_id, connection_string=conn, pupils=built["pupils"], marks=built["marks"],
            school_column=school_column or None, laestab=str(laestab) if laestab else None,
            chunk_rows=int(options.get("chunk_rows", 5000)), max_retries=int(options.get("max_retries", 3)),
            backoff_seconds=float(options.get("backoff_seconds", 2.0)), connection_env=env_name,
            schools=schools, login_timeout_seconds=int(options.get("login_timeout_seconds", 15)),
            timezone=tz or None,
            query_timeout_seconds=_whole(where, options, "query_timeout_seconds", 300),
            watermark_overlap_seconds=float(_whole(where, options, "watermark_overlap_seconds", 600)),
            watermark_overlap_count=_whole(where, options, "watermark_overlap_count", 0),
        )
        if source.chunk_rows < 1:
            raise ConfigError(f"{where}: chunk_rows must be at least 1")
        if school_column:
            quote_identifier(school_column)
        return source


def _whole(where: str, options: dict, name: str, default: int) -> int:
    """A whole, non-negative number of seconds or rows from the options."""
    raw = options.get(name, default)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        value = -1
    if value < 0 or isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
        raise ConfigError(f"{where}: {name} must be a whole number, 0 or more, not {raw!r}")
    return value


def _relation_from_options(where: str, name: str, spec: dict) -> OdbcRelation:
    """Identity mapping by default; a field mapped to "" is one the database does not hold."""
    relation = RELATIONS[name]
    if not spec.get("table"):
        raise ConfigError(f"{where}: table is required")
    overrides = dict(spec.get("columns", {}))
    unknown = set(overrides) - set(relation.fields)
    if unknown:
        raise ConfigError(f"{where}: maps unknown fields {sorted(unknown)}; docs/layouts.md#school-mis-over-odbc fields are "
                          f"{list(relation.fields)}")
    columns = {f: overrides.get(f, f) for f in relation.fields}
    missing = [f for f in relation.required if not columns[f]]
    if missing:
        raise ConfigError(f"{where}: required fields {missing} cannot be left unmapped")
    columns = {f: c for f, c in columns.items() if c}
    watermark = spec.get("watermark_column", "last_modified")
    try:
        for ident in (spec["table"], watermark, *columns.values()):
            quote_identifier(ident)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return OdbcRelation(table=spec["table"], columns=columns, watermark_column=watermark)


@dataclass
class Extract:
    """One school's rows from one chunk, as a CSV file in the relation's built-in layout.

    `watermark` is the value to store once this extract (and every one before it) is landed: the
    highest watermark of the chunk on a chunk's last extract, the previous chunk's on the others
    (None while nothing is yet safe to store). `chunk_watermark` is the chunk's highest value.
    """

    file_name: str
    data: bytes = field(repr=False)
    relation: str
    rows: int
    watermark: str | None
    layout: str = ""
    laestab: str = ""
    chunk: int = 0
    chunk_watermark: str = ""
    seen: list[tuple[str, str]] = field(default_factory=list, repr=False)
    overlap_floor: str | None = None


# `Extract.seen`: (fingerprint, watermark) of the extract's rows within the overlap window below
# its chunk's highest watermark — what the caller keeps (with the watermark) and passes back as
# `pull(seen=...)`, so that re-reading the window drops rows pulled before. `overlap_floor`: the
# lowest watermark the next pull re-reads; fingerprints below it may be forgotten.


# -- watermarks: rendered to text for the store, bound back in the database's own type ----------

def render_watermark(value: Any) -> str:
    """A watermark value as text: ISO dates and datetimes, integers, 0x-hex for rowversion bytes."""
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return str(value)


def parse_watermark(text: str) -> Any:
    """The inverse of `render_watermark`, as the value to bind against the watermark column."""
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if re.fullmatch(r"0x[0-9a-fA-F]+", text):
        return bytes.fromhex(text[2:])
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return dt.date.fromisoformat(text)
    if re.match(r"\d{4}-\d{2}-\d{2}[T ]\d", text):
        return dt.datetime.fromisoformat(text)
    return text


def overlap_below(source: OdbcSource, value: Any) -> Any:
    """The lowest watermark value a pull re-reads when `value` is the stored watermark."""
    if isinstance(value, dt.datetime):
        return value - dt.timedelta(seconds=source.watermark_overlap_seconds)
    if isinstance(value, dt.date):
        return value - dt.timedelta(days=math.ceil(source.watermark_overlap_seconds / 86400))
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value - source.watermark_overlap_count
    if isinstance(value, (bytes, bytearray)):
        lowered = max(0, int.from_bytes(value, "big") - source.watermark_overlap_count)
        return lowered.to_bytes(len(value), "big")
    return value


def _overlaps(source: OdbcSource, value: Any) -> bool:
    """Whether the watermark's type has an overlap window configured."""
    if isinstance(value, (dt.date, dt.datetime)):
        return source.watermark_overlap_seconds > 0
    if isinstance(value, (int, bytes, bytearray)) and not isinstance(value, bool):
        return source.watermark_overlap_count > 0
    return False


def _at_or_below(value: Any, limit: Any) -> bool:
    try:
        return value <= limit
    except TypeError:       # mixed naive and aware datetimes: treat as inside, to be safe
        return True


def _higher(a: Any, b: Any) -> Any:
    try:
        return b if a is None or b > a else a
    except TypeError:
        return b


def row_fingerprint(key: bytes, relation: str, laestab: str, values: tuple) -> str:
    """A keyed fingerprint of one row as extracted (HMAC-SHA256, 32 hex): the same row read
    again has the same fingerprint; a changed value or watermark gives another."""
    text = "\x1f".join([relation, laestab, *("" if v is None else render_watermark(v) if isinstance(
        v, (bytes, bytearray, dt.date)) else str(v) for v in values)])
    return hmac.new(key, text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:32]


def watermark_get(store: Any, source_id: str, relation: str) -> str | None:
    """The last stored watermark of a source's relation, or None before its first pull."""
    query = select(watermarks.c.value).where(
        watermarks.c.source_id == source_id, watermarks.c.relation == relation)
    with store.engine.connect() as conn:
        return conn.execute(query).scalar_one_or_none()


def watermark_set(store: Any, source_id: str, relation: str, value: str | None, at: dt.datetime) -> None:
    """Store a watermark once the extracts up to it are landed; None (nothing safe yet) is a no-op."""
    if value is None:
        return
    key = (watermarks.c.source_id == source_id, watermarks.c.relation == relation)
    # Inside the caller's store transaction when there is one (landing, overlap and watermark together).
    begin = store.begin if hasattr(store, "begin") else store.engine.begin
    with begin() as conn:
        changed = conn.execute(update(watermarks).where(*key).values(value=value, updated_at=at)).rowcount
        if not changed:
            conn.execute(insert(watermarks).values(source_id=source_id, relation=relation, value=value,
                                                   updated_at=at))


def overlap_seen(store: Any, source_id: str, relation: str) -> set[str]:
    """Fingerprints of the rows already pulled within the overlap window, for `pull(seen=...)`."""
    query = select(odbc_overlap_rows.c.fingerprint).where(
        odbc_overlap_rows.c.source_id == source_id, odbc_overlap_rows.c.relation == relation)
    with store.engine.connect() as conn:
        return set(conn.execute(query).scalars())


def overlap_record(store: Any, source_id: str, relation: str, extract: Extract) -> None:
    """Remember the fingerprints of an extract's rows in the overlap window (once it is landed) and
    forget those below the window the next pull re-reads. Call it with `watermark_set`, in the
    same store transaction as the landing."""
    key = (odbc_overlap_rows.c.source_id == source_id, odbc_overlap_rows.c.relation == relation)
    begin = store.begin if hasattr(store, "begin") else store.engine.begin
    with begin() as conn:
        if extract.overlap_floor is not None and extract.watermark is not None:
            floor = parse_watermark(extract.overlap_floor)
            stale = [fp for fp, wm in conn.execute(select(odbc_overlap_rows.c.fingerprint,
                                                          odbc_overlap_rows.c.watermark).where(*key))
                     if _below(parse_watermark(wm), floor)]
            for start in range(0, len(stale), 500):
                conn.execute(delete(odbc_overlap_rows).where(
                    *key, odbc_overlap_rows.c.fingerprint.in_(stale[start:start + 500])))
        known = set(conn.execute(select(odbc_overlap_rows.c.fingerprint).where(
            *key, odbc_overlap_rows.c.fingerprint.in_([fp for fp, _ in extract.seen]))).scalars()) \
            if extract.seen else set()
        fresh = {fp: wm for fp, wm in extract.seen if fp not in known}
        if fresh:
            conn.execute(insert(odbc_overlap_rows), [
                {"source_id": source_id, "relation": relation, "fingerprint": fp, "watermark": wm}
                for fp, wm in fresh.items()])


# -- the pull ----------------------------------------------------------------------------------

def select_statement(source: OdbcSource, relation: str, *, incremental: bool) -> tuple[str, list[str], int]:
    """The SELECT for a relation: SQL text with `?` placeholders, the output fields, the watermark index.

    Rows come in watermark order, then school and natural key, so chunks are reproducible.
    """
    rel, spec = source.relation(relation), RELATIONS[relation]
    fields = list(rel.columns)
    exprs = [quote_identifier(rel.columns[f]) for f in fields]
    wm = quote_identifier(rel.watermark_column)
    exprs.append(wm)
    if source.school_column:
        exprs.append(quote_identifier(source.school_column))
    where = [f"{wm} > ?" if incremental else f"{wm} IS NOT NULL"]
    if source.school_column and source.schools:
        where.append(f"{quote_identifier(source.school_column)} IN ({', '.join('?' for _ in source.schools)})")
    order = [wm]
    if source.school_column:
        order.append(quote_identifier(source.school_column))
    order += [quote_identifier(rel.columns[k]) for k in spec.keys]
    sql = (f"SELECT {', '.join(exprs)} FROM {quote_identifier(rel.table)} "
           f"WHERE {' AND '.join(where)} ORDER BY {', '.join(order)}")
    return sql, fields, len(fields)


def pull(source: OdbcSource, relation: str, *, since: str | None, now: dt.datetime,
         seen: Collection[str] = frozenset(), fingerprint_key: bytes = b"") -> Iterator[Extract]:
    """Yield CSV extracts of the rows whose watermark is above `since` (all rows when None), and
    of rows in the overlap window below `since` that are not among the fingerprints `seen`.

    Chunks hold `chunk_rows` rows, extended so that rows sharing a watermark value are never split
    across two chunks (resuming with `>` from a stored watermark then skips nothing); a chunk can
    therefore exceed `chunk_rows` when many rows share one value. Rows already pulled (in `seen`)
    are dropped, so a chunk may yield fewer rows than it read, or none. `fingerprint_key` keys the
    row fingerprints (pass the deployment's token key: they are then pseudonymous). Driver and
    network failures are retried with exponential backoff, resuming after the last chunk already
    yielded; a query over `query_timeout_seconds` is cancelled; then `OdbcSourceError`.
    """
    source.relation(relation)    # refuses an unknown relation name
    driver_manager()
    spec = RELATIONS[relation]
    stored = parse_watermark(since) if since is not None else None
    overlap = stored is not None and _overlaps(source, stored)
    safe = since                 # the watermark safe to store once everything yielded is landed
    attempts, chunk_no = 0, 0
    while True:
        sql, fields, wm_index = select_statement(source, relation, incremental=safe is not None)
        # The first query re-reads the overlap window; a retry after chunks were yielded resumes strictly.
        bound = overlap_below(source, stored) if overlap and safe == since else (
            parse_watermark(safe) if safe is not None else None)
        params: list[Any] = [bound] if safe is not None else []
        params += list(source.schools) if source.school_column else []
        clock = None
        try:
            conn = _connect(source)
            try:
                cursor = conn.cursor()
                clock = _QueryClock(cursor, source.query_timeout_seconds)
                with clock.running():
                    cursor.execute(sql, *params)
                fingerprint = _fingerprinter(source, relation, fields, fingerprint_key)
                drop = _already_pulled(seen, stored, wm_index, fingerprint) if overlap and seen else None
                for rows in chunk_rows(_TimedCursor(cursor, clock, drop), source.chunk_rows, wm_index):
                    chunk_no += 1
                    high_value = _higher(stored, rows[-1][wm_index])
                    high = render_watermark(high_value)
                    floor = overlap_below(source, high_value) if _overlaps(source, high_value) else None
                    marks = _recent_marks(rows, wm_index, floor, fingerprint)
                    extracts = _chunk_extracts(source, relation, spec, fields, rows, chunk_no, now, marks)
                    for i, extract in enumerate(extracts):
                        extract.chunk_watermark = high
                        extract.watermark = high if i == len(extracts) - 1 else safe
                        extract.overlap_floor = _floor_text(source, extract.watermark)
                        yield extract
                    safe, attempts = high, 0
            finally:
                _close(conn)
            return
        except pyodbc.Error as exc:
            if (clock is not None and clock.expired) or _is_timeout(exc):
                raise OdbcSourceError(_timed_out(source, relation)) from None
            if not _retryable(exc) or attempts >= source.max_retries:
                raise OdbcSourceError(_describe(source, relation, exc, attempts + 1)) from None
            attempts += 1
            _sleep(source.backoff_seconds * 2 ** (attempts - 1))


def _floor_text(source: OdbcSource, watermark: str | None) -> str | None:
    """The lowest watermark the next pull re-reads once `watermark` is stored (None: no window)."""
    if watermark is None:
        return None
    value = parse_watermark(watermark)
    return render_watermark(overlap_below(source, value)) if _overlaps(source, value) else None


def _fingerprinter(source: OdbcSource, relation: str, fields: list[str], key: bytes):
    school_index = len(fields) + 1

    def fingerprint(row) -> str:
        laestab = _laestab_of(source, relation, row[school_index]) if source.school_column else (source.laestab or "")
        return row_fingerprint(key, relation, laestab, tuple(row[: len(fields) + 1]))
    return fingerprint


def _already_pulled(seen: Collection[str], stored: Any, wm_index: int, fingerprint):
    """A test for rows re-read in the overlap window that an earlier pull already extracted.

    Rows come in watermark order: only the leading run at or below the stored watermark can have
    been pulled before, so the rows after it are never hashed. Dropping them before chunking makes
    a re-read with nothing new chunk exactly as a strict pull from the watermark would: an
    interrupted chunk is extracted again as the same bytes, and lands once.
    """
    past = False

    def drop(row) -> bool:
        nonlocal past
        if past or not _at_or_below(row[wm_index], stored):
            past = True
            return False
        return fingerprint(row) in seen
    return drop


def _recent_marks(rows: list, wm_index: int, floor: Any, fingerprint) -> dict[int, str]:
    """Fingerprints of the chunk's trailing rows at or above `floor`: the rows the next pull's
    overlap window re-reads, which the caller remembers once they are landed."""
    marks: dict[int, str] = {}
    if floor is None:
        return marks
    i = len(rows)
    while i > 0 and not _below(rows[i - 1][wm_index], floor):
        i -= 1
        marks[id(rows[i])] = fingerprint(rows[i])
    return marks


def _below(value: Any, limit: Any) -> bool:
    try:
        return value < limit
    except TypeError:
        return False


class _QueryClock:
    """Cancels the statement on `cursor` when one call (execute, fetch) runs over `seconds`.

    Driver-independent: SQLCancel from a timer thread, which psqlODBC and SQL Server's drivers
    honour. `expired` tells the caller that the error it sees is the cancellation.
    """

    def __init__(self, cursor: Any, seconds: int):
        self.cursor, self.seconds, self.expired = cursor, seconds, False

    @contextmanager
    def running(self) -> Iterator[None]:
        if not self.seconds:
            yield
            return
        timer = threading.Timer(self.seconds, self._cancel)
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    def _cancel(self) -> None:
        self.expired = True
        try:
            self.cursor.cancel()
        except Exception:   # the statement finished meanwhile, or the driver cannot cancel
            pass


class _TimedCursor:
    """A cursor whose fetches run under a `_QueryClock`, without the rows `drop` says to leave out."""

    def __init__(self, cursor: Any, clock: _QueryClock, drop=None):
        self._cursor, self._clock, self._drop = cursor, clock, drop

    def fetchmany(self, size: int) -> list:
        while True:
            with self._clock.running():
                batch = self._cursor.fetchmany(size)
            if not batch or self._drop is None:
                return batch
            batch = [row for row in batch if not self._drop(row)]
            if batch:
                return batch


def chunk_rows(cursor: Any, size: int, wm_index: int) -> Iterator[list]:
    """Rows in chunks of about `size`, each ending on a change of watermark value."""
    pending: list = []
    while True:
        batch = cursor.fetchmany(size)
        if not batch:
            if pending:
                yield pending
            return
        pending.extend(batch)
        while len(pending) >= size:
            last = pending[size - 1][wm_index]
            cut = size
            while cut < len(pending) and pending[cut][wm_index] == last:
                cut += 1
            if cut == len(pending):
                break            # the tie may continue into the next batch
            yield pending[:cut]
            pending = pending[cut:]


_sleep = time.sleep


def _connect(source: OdbcSource) -> Any:
    conn = pyodbc.connect(source.connection_string, timeout=source.login_timeout_seconds)
    if source.query_timeout_seconds:
        try:
            # Enforced by the driver where it supports it (SQL Server); psqlODBC refuses the
            # attribute, and `_QueryClock` cancels a statement over the limit on every driver.
            conn.timeout = source.query_timeout_seconds
        except pyodbc.Error:
            pass
    return conn


def _close(conn: Any) -> None:
    try:
        conn.close()
    except pyodbc.Error:
        pass


def _chunk_extracts(source: OdbcSource, relation: str, spec: _RelationSpec, fields: list[str],
                    rows: list, chunk_no: int, now: dt.datetime,
                    marks: Mapping[int, str] | None = None) -> list[Extract]:
    """Split one chunk by school (first appearance order) and render each part as a CSV file."""
    by_school: dict[str, list] = {}
    school_index = len(fields) + 1
    for row in rows:
        if source.school_column:
            laestab = _laestab_of(source, relation, row[school_index])
        else:
            laestab = source.laestab or ""
        by_school.setdefault(laestab, []).append(row)
    tz = ZoneInfo(source.timezone) if source.timezone else None
    extracts = []
    for laestab, school_rows in by_school.items():
        data = render_csv(fields, (row[: len(fields)] for row in school_rows), tz)
        extracts.append(Extract(
            file_name=extract_file_name(source.source_id, relation, laestab, now, chunk_no, data),
            data=data, relation=relation, rows=len(school_rows), watermark=None,
            layout=spec.layout, laestab=laestab, chunk=chunk_no,
            seen=[(marks[id(row)], render_watermark(row[len(fields)])) for row in school_rows
                  if marks and id(row) in marks],
        ))
    return extracts


def _laestab_of(source: OdbcSource, relation: str, value: Any) -> str:
    laestab = str(value).strip() if value is not None else ""
    if isinstance(value, (int, decimal.Decimal)):
        laestab = str(int(value))
    if not _LAESTAB.match(laestab):
        raise OdbcSourceError(
            f"ODBC source {source.source_id!r}, relation {relation!r}: school column "
            f"{source.school_column!r} holds {laestab!r}, which is not a 7-digit LAESTAB; check the "
            "school_column setting or the database's school codes")
    return laestab


def render_csv(fields: list[str], rows: Any, tz: dt.tzinfo | None = None) -> bytes:
    """UTF-8 CSV with docs/layouts.md#school-mis-over-odbc headers, ISO dates and ISO 8601 datetimes, as the layouts expect."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(fields)
    text = _text
    fast = _FAST_TEXT
    for row in rows:
        writer.writerow([fast[type(v)](v) if type(v) in fast else text(v, tz) for v in row])
    return out.getvalue().encode("utf-8")


# The common value types, rendered without the general dispatch below (a pull renders millions).
_FAST_TEXT = {str: str.strip, int: str, float: str, type(None): lambda v: "", dt.date: dt.date.isoformat}


def _text(value: Any, tz: dt.tzinfo | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Y" if value else "N"
    if isinstance(value, dt.datetime):
        if value.tzinfo is None and tz is not None:
            value = value.replace(tzinfo=tz)
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal) and value == value.to_integral_value():
        return str(int(value))
    return str(value).strip() if isinstance(value, str) else str(value)


def extract_file_name(source_id: str, relation: str, laestab: str, now: dt.datetime, chunk_no: int,
                      data: bytes) -> str:
    """`<LAESTAB>_odbc-marks_<YYYYMMDD>T<HHMM>_<source>-c<chunk>-<hash>.csv` (pupils: no `T<HHMM>`).

    The hash of the content makes a name unique to its bytes, so the same chunk pulled twice in
    one minute is the same file.
    """
    tag = re.sub(r"[^A-Za-z0-9-]+", "-", source_id).strip("-") or "odbc"
    digest = hashlib.sha256(data).hexdigest()[:12]
    if relation == "marks":
        stamp = f"{now:%Y%m%d}T{now:%H%M}_"
    else:
        stamp = f"{now:%Y%m%d}_{now:%H%M}-"
    return f"{laestab}_odbc-{relation}_{stamp}{tag}-c{chunk_no:05d}-{digest}.csv"


# -- errors ------------------------------------------------------------------------------------

_RETRY_STATES = ("08", "HYT", "40001", "40P01", "57P", "HY000")


def _retryable(exc: pyodbc.Error) -> bool:
    """Driver and network failures (connection, timeout, deadlock, server restart) are worth a retry;
    a refused login is not: retrying it only risks locking the account."""
    if _is_auth_failure(exc):
        return False
    if isinstance(exc, (pyodbc.OperationalError, pyodbc.InterfaceError)):
        return True
    return _sqlstate(exc).startswith(_RETRY_STATES)


_TIMEOUT_STATES = ("HYT00", "HY008", "57014")


def _is_timeout(exc: pyodbc.Error) -> bool:
    """A statement over its time limit (the driver's query timeout, or cancelled)."""
    return _sqlstate(exc).startswith(_TIMEOUT_STATES)


def _timed_out(source: OdbcSource, relation: str) -> str:
    rel = source.relation(relation)
    return (f"ODBC source {source.source_id!r}, relation {relation!r} (table {rel.table!r}): the query did "
            f"not finish within query_timeout_seconds = {source.query_timeout_seconds} and was cancelled; "
            f"the MIS database may be locked by a long transaction or overloaded: ask its administrator, or "
            f"raise query_timeout_seconds in sources.toml. Extracts already landed are kept; the next pull "
            f"resumes from the stored watermark")


def _is_auth_failure(exc: pyodbc.Error) -> bool:
    text = " ".join(str(a) for a in exc.args)
    return _sqlstate(exc).startswith("28") or bool(
        re.search(r"password authentication failed|login failed|authentication failed", text, re.I))


def _sqlstate(exc: pyodbc.Error) -> str:
    return str(exc.args[0]) if exc.args and isinstance(exc.args[0], str) and len(exc.args) > 1 else ""


def _describe(source: OdbcSource, relation: str, exc: pyodbc.Error, attempts: int) -> str:
    """What failed and what to check — with secrets and quoted values taken out of the driver's text."""
    state = _sqlstate(exc)
    detail = str(exc.args[1] if len(exc.args) > 1 else exc.args[0] if exc.args else exc)
    rel = source.relation(relation)
    names = {rel.table, rel.watermark_column, *rel.columns.values(), *(rel.table.split(".")),
             *([source.school_column] if source.school_column else [])}
    detail = scrub(detail, source.connection_string, names)
    env = f"environment variable {source.connection_env}" if source.connection_env else "connection string"
    if _is_auth_failure(exc):
        hint = f"check the user name and password in the {env}"
    elif state.startswith("08") or state.startswith("HYT") or state.startswith("IM"):
        hint = (f"check the driver, server, port and database name in the {env}, that the server is "
                "running and reachable from this host, and the driver's entry in odbcinst.ini")
    elif state.startswith("42"):
        hint = (f"check the table {rel.table!r} and the columns mapped for relation {relation!r} in "
                "sources.toml, and that the database user may read them")
    else:
        hint = f"check the database and the source's settings in sources.toml and the {env}"
    tries = f" after {attempts} attempt{'s' if attempts != 1 else ''}"
    return (f"ODBC source {source.source_id!r}, relation {relation!r} (table {rel.table!r}): failed{tries} "
            f"(SQLSTATE {state or 'unknown'}: {detail}); {hint}")


def scrub(text: str, connection_string: str, names: set[str] | frozenset[str] = frozenset()) -> str:
    """Driver text without the connection string's secrets and without quoted data values.

    Quoted words are kept when they are host names, ports or database names from the connection
    string; anything else quoted (which may be a value read from a row) is replaced by '…'.
    """
    secrets, keep = [], set(names)
    for part in connection_string.split(";"):
        key, _, value = part.partition("=")
        value = value.strip().strip("{}")
        if not value:
            continue
        if key.strip().lower() in {"pwd", "password"}:
            secrets.append(value)
        elif key.strip().lower() in {"server", "host", "servername", "port", "database", "db", "dsn", "driver"}:
            keep.add(value)
    for secret in secrets:
        text = text.replace(secret, "***")
    text = re.sub(r'"([^"]*)"', lambda m: m.group(0) if m.group(1) in keep else '"…"', text)
    text = re.sub(r"'([^']*)'", lambda m: m.group(0) if m.group(1) in keep else "'…'", text)
    return " ".join(text.split())


def latest_watermark(source: OdbcSource, relation: str) -> str | None:
    """The highest watermark value in the relation now (one aggregate query), for a sensor tick."""
    rel = source.relation(relation)
    driver_manager()
    sql = f"SELECT MAX({quote_identifier(rel.watermark_column)}) FROM {quote_identifier(rel.table)}"
    clock = None
    try:
        conn = _connect(source)
        try:
            cursor = conn.cursor()
            clock = _QueryClock(cursor, source.query_timeout_seconds)
            with clock.running():
                value = cursor.execute(sql).fetchone()[0]
        finally:
            _close(conn)
    except pyodbc.Error as exc:
        if (clock is not None and clock.expired) or _is_timeout(exc):
            raise OdbcSourceError(_timed_out(source, relation)) from None
        raise OdbcSourceError(_describe(source, relation, exc, 1)) from None
    return render_watermark(value) if value is not None else None
