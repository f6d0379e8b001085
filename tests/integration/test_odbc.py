"""The ODBC connector against a real driver manager (unixODBC) and driver (psqlODBC) on PostgreSQL.

Each test module works in its own freshly created database, so the seeded `tether_mis` is never
disturbed; each test makes its own MIS-like tables there.
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import os
import re
import tracemalloc
import uuid
from types import SimpleNamespace

import psycopg2
from psycopg2 import sql
import pytest
from sqlalchemy import create_engine

from connectors.odbc import (
    OdbcSource, OdbcSourceError, overlap_record, overlap_seen, pull, watermark_get, watermark_set,
)
from schemas.config import load_config
from schemas.tables import metadata, odbc_overlap_rows, watermarks

pytestmark = pytest.mark.integration

NOW = dt.datetime(2026, 11, 30, 9, 15)
SCHOOLS = ("9993001", "9993002", "9993003")
KEY = b"k" * 32     # the row fingerprints' key (a deployment passes its token key)


def _connection_string() -> str:
    value = os.environ.get("TETHER_TEST_ODBC_CONNECTION")
    if not value:
        pytest.fail("TETHER_TEST_ODBC_CONNECTION is not set: run `make services` and source infra/services.env")
    return value


def _part(conn: str, key: str) -> str:
    match = re.search(rf"(?i)(?:^|;){key}=([^;]*)", conn)
    return match.group(1) if match else ""


@pytest.fixture(scope="module")
def database():
    """A uniquely named database for this module, dropped afterwards; yields (psycopg2 dsn, odbc string)."""
    conn = _connection_string()
    host, port, user = _part(conn, "Server"), _part(conn, "Port") or "5432", _part(conn, "Uid")
    name = f"tether_odbc_test_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(host=host, port=port, user=user, dbname="postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))      # name is generated above, not input
    odbc_conn = re.sub(r"(?i)Database=[^;]*", f"Database={name}", conn)
    try:
        yield SimpleNamespace(dsn=dict(host=host, port=port, user=user, dbname=name), odbc=odbc_conn)
    finally:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()


def run_sql(db, sql: str, params=None) -> None:
    with psycopg2.connect(**db.dsn) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
    conn.close()


def make_marks(db, table: str, rows: list[tuple]) -> None:
    """A hosted MIS marks table: (laestab, pupil_id, session_date, session, mark, minutes_late, last_modified)."""
    run_sql(db, f"""CREATE TABLE {table} (laestab char(7) NOT NULL, pupil_id varchar(20) NOT NULL,
        session_date date NOT NULL, session varchar(2) NOT NULL, mark varchar(2) NOT NULL, minutes_late int,
        last_modified timestamptz NOT NULL, PRIMARY KEY (laestab, pupil_id, session_date, session))""")
    buffer = io.StringIO()
    csv.writer(buffer).writerows([[("\\N" if v is None else v) for v in row] for row in rows])
    buffer.seek(0)
    with psycopg2.connect(**db.dsn) as conn, conn.cursor() as cur:
        cur.copy_expert(f"COPY {table} FROM STDIN WITH (FORMAT csv, NULL '\\N')", buffer)
    conn.close()


def table_rows(db, table: str) -> set[tuple]:
    with psycopg2.connect(**db.dsn) as conn, conn.cursor() as cur:
        cur.execute("SET TIME ZONE 'UTC'")
        cur.execute(sql.SQL("SELECT laestab, pupil_id, session_date, session, mark, last_modified FROM {}")
                    .format(sql.Identifier(table)))
        rows = {(r[0], r[1], r[2].isoformat(), r[3], r[4], r[5].replace(tzinfo=None).isoformat())
                for r in cur.fetchall()}
    conn.close()
    return rows


def term_rows(days: int = 10, pupils: int = 20, schools=SCHOOLS) -> list[tuple]:
    """Registers saved a class (10 pupils) at a time: marks sharing one last_modified."""
    rows = []
    for s, laestab in enumerate(schools):
        for d in range(days):
            day = dt.date(2026, 9, 7) + dt.timedelta(days=d)
            for session, hour in (("AM", 8), ("PM", 13)):
                for p in range(pupils):
                    saved = dt.datetime(day.year, day.month, day.day, hour, 45 + s, (p // 10) * 7)
                    rows.append((laestab, f"P{p:03d}", day, session, "/" if session == "AM" else "\\", None,
                                 saved.isoformat() + "+00"))
    return rows


def odbc_source(db, table: str, **options) -> OdbcSource:
    opts = {"connection_env": "TETHER_MIS_ODBC", "school_column": "laestab", "timezone": "UTC",
            "backoff_seconds": 0.01, "relations": {"pupils": {"table": "mis_pupils"}, "marks": {"table": table}}}
    opts.update(options)
    return OdbcSource.from_source_options("mis_hosted", opts, {"TETHER_MIS_ODBC": db.odbc})


@pytest.fixture
def store(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'store.sqlite'}")
    metadata.create_all(engine, tables=[watermarks, odbc_overlap_rows])
    yield SimpleNamespace(engine=engine)
    engine.dispose()


def utc_session(db) -> None:
    """The test database keeps UTC, so naive datetimes read over ODBC are UTC."""
    run_sql(db, f'ALTER DATABASE "{db.dsn["dbname"]}" SET timezone TO \'UTC\'')


def landed_rows(extracts) -> list[tuple]:
    """Rows as the caller would land them: identical bytes land once (idempotent by checksum)."""
    layout = load_config().layout("odbc-marks")
    seen, rows = set(), []
    for extract in extracts:
        digest = hashlib.sha256(extract.data).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        laestab = layout.parse_filename(extract.file_name)["laestab"]
        for r in csv.DictReader(io.StringIO(extract.data.decode(layout.encoding))):
            updated = dt.datetime.fromisoformat(r["last_modified"]).astimezone(dt.timezone.utc).replace(tzinfo=None)
            rows.append((laestab, r["pupil_id"], r["session_date"], r["session"], r["mark"], updated.isoformat()))
    return rows


def land_all(source, store, relation="marks", stop_after=None):
    """Pull from the stored watermark (re-reading its overlap window), 'landing' each extract and
    then storing its overlap fingerprints and watermark, as orchestration's land_odbc does."""
    landed = []
    since = watermark_get(store, source.source_id, relation)
    seen = overlap_seen(store, source.source_id, relation)
    for i, extract in enumerate(pull(source, relation, since=since, now=NOW, seen=seen, fingerprint_key=KEY)):
        landed.append(extract)
        overlap_record(store, source.source_id, relation, extract)
        watermark_set(store, source.source_id, relation, extract.watermark, NOW)
        if stop_after is not None and stop_after(i, extract):
            break
    return landed


def test_full_pull_returns_every_row_in_chunks_of_per_school_extracts(database):
    utc_session(database)
    make_marks(database, "full_marks", term_rows())                   # 3 x 10 x 2 x 20 = 1200 rows
    extracts = list(pull(odbc_source(database, "full_marks", chunk_rows=250), "marks", since=None, now=NOW))
    rows = landed_rows(extracts)
    assert len(rows) == 1200 and set(rows) == table_rows(database, "full_marks")
    chunks = {e.chunk for e in extracts}
    assert len(chunks) >= 4
    assert {e.laestab for e in extracts} == set(SCHOOLS)
    assert any(len([e for e in extracts if e.chunk == c]) > 1 for c in chunks)     # chunks split by school
    # one extract per school per chunk, named so the layout reads the school from the file name
    layout = load_config().layout("odbc-marks")
    for extract in extracts:
        assert layout.parse_filename(extract.file_name)["laestab"] == extract.laestab
    assert len({e.file_name for e in extracts}) == len(extracts)
    # no watermark value is split across two chunks
    values_by_chunk = {c: {r[5] for e in extracts if e.chunk == c for r in landed_rows([e])} for c in chunks}
    for a in chunks:
        for b in chunks - {a}:
            assert not values_by_chunk[a] & values_by_chunk[b]


def test_incremental_pull_fetches_only_new_and_corrected_marks(database, store):
    utc_session(database)
    make_marks(database, "inc_marks", term_rows(days=5))
    source = odbc_source(database, "inc_marks", chunk_rows=100)
    assert len(landed_rows(land_all(source, store))) == 600
    assert watermark_get(store, "mis_hosted", "marks") == "2026-09-11T13:47:07"

    # a new morning's registers, and two absences explained the next day (N -> I, M)
    new = [(laestab, f"P{p:03d}", dt.date(2026, 9, 14), "AM", "/", None, "2026-09-14T08:50:00+00")
           for laestab in SCHOOLS for p in range(20)]
    make_marks(database, "inc_new", new)
    run_sql(database, "INSERT INTO inc_marks SELECT * FROM inc_new")
    run_sql(database, """UPDATE inc_marks SET mark = 'I', last_modified = '2026-09-14T10:05:00+00'
                         WHERE laestab = '9993001' AND pupil_id = 'P004' AND session_date = '2026-09-08' AND session = 'PM'""")
    run_sql(database, """UPDATE inc_marks SET mark = 'M', last_modified = '2026-09-14T10:06:00+00'
                         WHERE laestab = '9993002' AND pupil_id = 'P017' AND session_date = '2026-09-07' AND session = 'AM'""")

    rows = landed_rows(land_all(source, store))
    expected = {(laestab, f"P{p:03d}", "2026-09-14", "AM", "/", "2026-09-14T08:50:00") for laestab in SCHOOLS
                for p in range(20)}
    expected |= {("9993001", "P004", "2026-09-08", "PM", "I", "2026-09-14T10:05:00"),
                 ("9993002", "P017", "2026-09-07", "AM", "M", "2026-09-14T10:06:00")}
    assert len(rows) == 62 and set(rows) == expected
    assert watermark_get(store, "mis_hosted", "marks") == "2026-09-14T10:06:00"
    assert land_all(source, store) == []                                 # nothing new: nothing pulled


def test_an_interrupted_pull_resumes_from_the_watermark_with_nothing_lost_or_doubled(database, store):
    utc_session(database)
    rows = [("9993001", f"P{i:04d}", dt.date(2026, 9, 7) + dt.timedelta(days=i // 100), "AM", "/", None,
             (dt.datetime(2026, 9, 7, 8, 0) + dt.timedelta(seconds=i)).isoformat() + "+00") for i in range(1000)]
    make_marks(database, "int_marks", rows)
    source = odbc_source(database, "int_marks", chunk_rows=200, school_column=None, laestab="9993001")
    first = land_all(source, store, stop_after=lambda i, e: e.chunk == 2)   # 2 of 5 chunks, then stop
    assert [e.rows for e in first] == [200, 200]
    assert watermark_get(store, "mis_hosted", "marks") == "2026-09-07T08:06:39"
    second = land_all(source, store)
    assert [e.rows for e in second] == [200, 200, 200]
    pulled = landed_rows(first + second)
    assert len(pulled) == len(set(pulled)) == 1000
    assert set(pulled) == table_rows(database, "int_marks")


def test_a_pull_interrupted_inside_a_chunk_resumes_without_loss_and_relands_identical_bytes(database, store):
    utc_session(database)
    make_marks(database, "mid_marks", term_rows(days=4))               # 480 rows, 3 schools
    source = odbc_source(database, "mid_marks", chunk_rows=100)
    # stop after the first school's extract of chunk 3: only chunk 2's watermark is safe
    first = land_all(source, store, stop_after=lambda i, e: e.chunk == 3)
    assert first[-1].watermark == first[-2].chunk_watermark != first[-1].chunk_watermark
    second = land_all(source, store)
    assert second[0].data == first[-1].data                              # the same bytes: lands once
    pulled = landed_rows(first + second)
    keys = [(r[0], r[1], r[2], r[3], r[5]) for r in pulled]
    assert len(keys) == len(set(keys)) == 480
    assert set(pulled) == table_rows(database, "mid_marks")


def test_rows_sharing_a_watermark_across_a_chunk_boundary_are_not_skipped(database, store):
    utc_session(database)
    stamps = ["2026-09-07T08:41:00+00"] * 3 + ["2026-09-07T08:42:00+00"] * 6 + ["2026-09-07T08:43:00+00"] * 3
    rows = [("9993001", f"P{i:02d}", dt.date(2026, 9, 7), "AM", "/", None, s) for i, s in enumerate(stamps)]
    make_marks(database, "tie_marks", rows)
    source = odbc_source(database, "tie_marks", chunk_rows=4)
    first = land_all(source, store, stop_after=lambda i, e: True)     # one chunk, then stop
    assert [e.rows for e in first] == [9]                               # the 08:42 tie is not split
    second = land_all(source, store)
    assert [e.rows for e in second] == [3]
    assert len(landed_rows(first + second)) == 12


def test_a_row_committed_late_below_the_watermark_is_read_once(database, store):
    """A long MIS transaction stamps its row when it starts (PostgreSQL's now()) but commits after
    a later row was pulled: the overlap window re-reads it, and only it."""
    utc_session(database)
    make_marks(database, "late_marks", term_rows(days=2, schools=SCHOOLS[:1]))      # 80 rows
    source = odbc_source(database, "late_marks", chunk_rows=30)
    assert len(landed_rows(land_all(source, store))) == 80

    slow = psycopg2.connect(**database.dsn)           # the long transaction: stamped now, committed later
    with slow.cursor() as cur:
        cur.execute("INSERT INTO late_marks VALUES ('9993001', 'P900', '2026-09-14', 'AM', 'L', 5, now())")
    run_sql(database, "INSERT INTO late_marks VALUES ('9993001', 'P901', '2026-09-14', 'AM', '/', NULL, "
                      "now() + interval '1 second')")
    assert [r[1] for r in landed_rows(land_all(source, store))] == ["P901"]     # P900 not yet committed
    pulled = watermark_get(store, "mis_hosted", "marks")
    slow.commit()
    slow.close()
    with psycopg2.connect(**database.dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT last_modified < %s::timestamptz FROM late_marks WHERE pupil_id = 'P900'", (pulled + "+00",))
        assert cur.fetchone()[0]                      # committed below the stored watermark
    conn.close()

    late = land_all(source, store)
    assert [r[1] for r in landed_rows(late)] == ["P900"]
    assert watermark_get(store, "mis_hosted", "marks") == pulled      # the watermark never moves back
    assert land_all(source, store) == []                               # and it is not read a second time


def test_a_row_committed_later_than_the_overlap_window_is_not_read(database, store):
    """The window bounds what is re-read: a row stamped further below the watermark is missed —
    widen watermark_overlap_seconds past the MIS's longest transaction."""
    utc_session(database)
    make_marks(database, "window_marks", term_rows(days=1, schools=SCHOOLS[:1]))
    source = odbc_source(database, "window_marks", watermark_overlap_seconds=600)
    land_all(source, store)
    run_sql(database, """INSERT INTO window_marks VALUES
        ('9993001', 'P800', '2026-09-07', 'PM', 'I', NULL, timestamptz '2026-09-07 13:45:07+00' - interval '9 minutes'),
        ('9993001', 'P801', '2026-09-07', 'PM', 'I', NULL, timestamptz '2026-09-07 13:45:07+00' - interval '11 minutes')""")
    assert [r[1] for r in landed_rows(land_all(source, store))] == ["P800"]


def test_a_hung_query_is_cancelled_after_query_timeout_with_a_one_line_error(database):
    utc_session(database)
    make_marks(database, "calm_marks", term_rows(days=1, schools=SCHOOLS[:1]))
    run_sql(database, "CREATE VIEW hung_marks AS SELECT m.* FROM calm_marks m, (SELECT pg_sleep(600)) AS hang")
    source = odbc_source(database, "hung_marks", query_timeout_seconds=1, max_retries=3)

    with pytest.raises(OdbcSourceError) as caught:
        list(pull(source, "marks", since=None, now=NOW))

    message = str(caught.value)
    assert "\n" not in message
    assert "'mis_hosted'" in message and "relation 'marks'" in message and "'hung_marks'" in message
    assert "query_timeout_seconds = 1" in message and "cancelled" in message
    with psycopg2.connect(**database.dsn) as conn, conn.cursor() as cur:      # not left running on the server
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND state = 'active' AND pid <> pg_backend_pid() AND query LIKE %s", ("%hung_marks%",))
        assert cur.fetchone()[0] == 0
    conn.close()


def test_wrong_port_is_a_clear_error_without_the_password(database):
    secret = "NotTheRealSecret42"
    conn = re.sub(r"(?i)Port=\d+", "Port=1", database.odbc) + f"Pwd={secret};"
    source = OdbcSource.from_source_options(
        "mis_hosted", {"connection_env": "TETHER_MIS_ODBC", "laestab": "9993001", "max_retries": 1,
                       "backoff_seconds": 0.01, "login_timeout_seconds": 5,
                       "relations": {"pupils": {"table": "mis_pupils"}, "marks": {"table": "mis_marks"}}},
        {"TETHER_MIS_ODBC": conn})
    with pytest.raises(OdbcSourceError) as caught:
        list(pull(source, "marks", since=None, now=NOW))
    message = str(caught.value)
    assert secret not in message
    assert "'mis_hosted'" in message and "after 2 attempts" in message
    assert "port" in message and "TETHER_MIS_ODBC" in message


def test_wrong_database_is_a_clear_error_without_the_password(database):
    secret = "NotTheRealSecret42"
    conn = re.sub(r"(?i)Database=[^;]*", "Database=tether_no_such_db", database.odbc) + f"Pwd={secret};"
    source = OdbcSource.from_source_options(
        "mis_hosted", {"connection_env": "TETHER_MIS_ODBC", "laestab": "9993001", "max_retries": 0,
                       "relations": {"pupils": {"table": "mis_pupils"}, "marks": {"table": "mis_marks"}}},
        {"TETHER_MIS_ODBC": conn})
    with pytest.raises(OdbcSourceError, match="tether_no_such_db") as caught:
        list(pull(source, "marks", since=None, now=NOW))
    assert secret not in str(caught.value)


def test_a_missing_table_names_the_table_and_is_not_retried(database):
    source = odbc_source(database, "no_such_marks", max_retries=3)
    with pytest.raises(OdbcSourceError, match="after 1 attempt .*no_such_marks"):
        list(pull(source, "marks", since=None, now=NOW))


def _rss_kb() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))


def _pull_measuring(source) -> tuple[int, int, int]:
    """(rows, peak Python allocation during the pull, largest resident-memory growth seen)."""
    base, rows, growth = _rss_kb(), 0, 0
    tracemalloc.start()
    try:
        for extract in pull(source, "marks", since=None, now=NOW):
            rows += extract.rows
            growth = max(growth, _rss_kb() - base)
            del extract
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return rows, peak, growth * 1024


def test_memory_stays_flat_on_a_large_table(database):
    utc_session(database)
    for name, n in (("mem_small", 20_000), ("mem_large", 200_000)):
        run_sql(database, f"""CREATE TABLE {name} AS SELECT '9993001'::char(7) AS laestab,
            (g %% 1000)::text AS pupil_id, date '2026-09-07' + (g / 2000) AS session_date,
            CASE WHEN g %% 2 = 0 THEN 'AM' ELSE 'PM' END::varchar(2) AS session, '/'::varchar(2) AS mark,
            NULL::int AS minutes_late, timestamptz '2026-09-07 08:00+00' + g * interval '1 second' AS last_modified
            FROM generate_series(1, %s) AS g""", (n,))
    small = _pull_measuring(odbc_source(database, "mem_small", chunk_rows=5000))
    large = _pull_measuring(odbc_source(database, "mem_large", chunk_rows=5000))
    assert small[0] == 20_000 and large[0] == 200_000
    # Python's share: bounded by the chunk (about 1.2 kB a row here), not the table
    assert large[1] < 5000 * 2500
    assert large[1] < small[1] * 1.25
    # the driver's share: with UseDeclareFetch psqlODBC keeps one fetch window, not the result set
    assert large[2] < small[2] + 16 * 1024 * 1024
