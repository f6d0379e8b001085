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

SQL is built from validated, quoted identifiers; values (the watermark, school filters) are only
ever bound parameters. Errors name the source, relation and what to check — never the connection
string's password, and never a value read from the database.
"""
from __future__ import annotations

import csv
import datetime as dt
import decimal
import hashlib
import io
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import insert, select, update

from schemas.config import ConfigError
from schemas.errors import TetherError
from schemas.feeds import ODBC_RELATIONS
from schemas.tables import watermarks


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
        )
        if source.chunk_rows < 1:
            raise ConfigError(f"{where}: chunk_rows must be at least 1")
        if school_column:
            quote_identifier(school_column)
        return source


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
    with store.engine.begin() as conn:
        changed = conn.execute(update(watermarks).where(*key).values(value=value, updated_at=at)).rowcount
        if not changed:
            conn.execute(insert(watermarks).values(source_id=source_id, relation=relation, value=value,
                                                   updated_at=at))


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


def pull(source: OdbcSource, relation: str, *, since: str | None, now: dt.datetime) -> Iterator[Extract]:
    """Yield CSV extracts of the rows whose watermark is above `since` (all rows when None).

    Chunks hold `chunk_rows` rows, extended so that rows sharing a watermark value are never split
    across two chunks (resuming with `>` from a stored watermark then skips nothing); a chunk can
    therefore exceed `chunk_rows` when many rows share one value. Driver and network failures are
    retried with exponential backoff, resuming after the last chunk already yielded; then
    `OdbcSourceError`.
    """
    source.relation(relation)    # refuses an unknown relation name
    driver_manager()
    spec = RELATIONS[relation]
    safe = since                 # the watermark safe to store once everything yielded is landed
    attempts, chunk_no = 0, 0
    while True:
        sql, fields, wm_index = select_statement(source, relation, incremental=safe is not None)
        params: list[Any] = [parse_watermark(safe)] if safe is not None else []
        params += list(source.schools) if source.school_column else []
        try:
            conn = _connect(source)
            try:
                cursor = conn.cursor()
                cursor.execute(sql, *params)
                for rows in chunk_rows(cursor, source.chunk_rows, wm_index):
                    chunk_no += 1
                    high = render_watermark(rows[-1][wm_index])
                    extracts = _chunk_extracts(source, relation, spec, fields, rows, chunk_no, now)
                    for i, extract in enumerate(extracts):
                        extract.chunk_watermark = high
                        extract.watermark = high if i == len(extracts) - 1 else safe
                        yield extract
                    safe, attempts = high, 0
            finally:
                _close(conn)
            return
        except pyodbc.Error as exc:
            if not _retryable(exc) or attempts >= source.max_retries:
                raise OdbcSourceError(_describe(source, relation, exc, attempts + 1)) from None
            attempts += 1
            _sleep(source.backoff_seconds * 2 ** (attempts - 1))


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
    return conn


def _close(conn: Any) -> None:
    try:
        conn.close()
    except pyodbc.Error:
        pass


def _chunk_extracts(source: OdbcSource, relation: str, spec: _RelationSpec, fields: list[str],
                    rows: list, chunk_no: int, now: dt.datetime) -> list[Extract]:
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
    try:
        conn = _connect(source)
        try:
            value = conn.cursor().execute(sql).fetchone()[0]
        finally:
            _close(conn)
    except pyodbc.Error as exc:
        raise OdbcSourceError(_describe(source, relation, exc, 1)) from None
    return render_watermark(value) if value is not None else None
