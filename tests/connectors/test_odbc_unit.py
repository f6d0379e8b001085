"""The ODBC connector without a database: identifiers, configuration, chunking, errors, CSV extracts."""
from __future__ import annotations

import csv
import datetime as dt
import io
from types import SimpleNamespace

import pyodbc
import pytest
from sqlalchemy import create_engine

from connectors import odbc
from connectors.odbc import (
    Extract, OdbcSource, OdbcSourceError, parse_watermark, pull, quote_identifier, render_watermark,
    select_statement, watermark_get, watermark_set,
)
from schemas.config import ConfigError, load_config
from schemas.tables import metadata, watermarks

SECRET = "Tr0ub4dor&3"
OPTIONS = {
    "connection_env": "TETHER_MIS_ODBC",
    "school_column": "laestab",
    "chunk_rows": 4,
    "backoff_seconds": 0.0,
    "relations": {"pupils": {"table": "mis_pupils"}, "marks": {"table": "dbo.mis_marks"}},
}
ENV = {"TETHER_MIS_ODBC": f"Driver={{PostgreSQL Unicode}};Server=db.example;Port=5432;Database=mis;Uid=u;Pwd={SECRET};"}
NOW = dt.datetime(2026, 11, 30, 9, 15)


def source(**overrides) -> OdbcSource:
    return OdbcSource.from_source_options("mis_hosted", {**OPTIONS, **overrides}, ENV)


# -- identifiers and configuration ------------------------------------------------------------

def test_quote_identifier_quotes_plain_and_dotted_names():
    assert quote_identifier("mis_marks") == '"mis_marks"'
    assert quote_identifier("dbo.mis_marks") == '"dbo"."mis_marks"'


@pytest.mark.parametrize("bad", ["mis_marks; drop table x", 'mis"marks', "a..b", "mis.", "", "1table", "x y", "x--"])
def test_quote_identifier_refuses_anything_but_a_plain_name(bad):
    with pytest.raises(ConfigError):
        quote_identifier(bad)


def test_a_table_name_with_sql_in_it_is_refused_when_the_source_is_configured():
    relations = {"pupils": {"table": "mis_pupils"}, "marks": {"table": "mis_marks; drop table x"}}
    with pytest.raises(ConfigError, match="relation 'marks'"):
        source(relations=relations)


def test_a_column_name_with_sql_in_it_is_refused():
    relations = {"pupils": {"table": "mis_pupils"},
                 "marks": {"table": "mis_marks", "columns": {"mark": "mark) or (1=1"}}}
    with pytest.raises(ConfigError):
        source(relations=relations)


def test_columns_map_by_identity_unless_configured_and_empty_means_absent():
    relations = {"pupils": {"table": "mis_pupils", "columns": {"pupil_id": "adno", "upn": ""}},
                 "marks": {"table": "mis_marks", "watermark_column": "row_version"}}
    src = source(relations=relations)
    assert src.pupils.columns["pupil_id"] == "adno"
    assert "upn" not in src.pupils.columns
    assert src.pupils.columns["dob"] == "dob"
    assert src.marks.watermark_column == "row_version"


def test_a_required_field_cannot_be_unmapped():
    relations = {"pupils": {"table": "mis_pupils"}, "marks": {"table": "mis_marks", "columns": {"mark": ""}}}
    with pytest.raises(ConfigError, match="required"):
        source(relations=relations)


def test_missing_environment_variable_is_named():
    with pytest.raises(ConfigError, match="TETHER_MIS_ODBC"):
        OdbcSource.from_source_options("mis_hosted", OPTIONS, {})


def test_a_bare_dsn_name_becomes_a_dsn_connection_string():
    src = OdbcSource.from_source_options("s", OPTIONS, {"TETHER_MIS_ODBC": "tether_mis"})
    assert src.connection_string == "DSN=tether_mis;"


def test_exactly_one_of_school_column_or_laestab():
    with pytest.raises(ConfigError, match="exactly one"):
        source(laestab="9992001")
    with pytest.raises(ConfigError, match="exactly one"):
        source(school_column=None)
    assert source(school_column=None, laestab="9992001").laestab == "9992001"


def test_the_connection_string_never_appears_in_the_source_repr():
    assert SECRET not in repr(source())


def test_select_statement_binds_values_and_quotes_names():
    sql, fields, wm_index = select_statement(source(schools=["9992001", "9992002"]), "marks", incremental=True)
    assert sql == ('SELECT "pupil_id", "session_date", "session", "mark", "minutes_late", "last_modified", '
                   '"last_modified", "laestab" FROM "dbo"."mis_marks" WHERE "last_modified" > ? AND "laestab" IN (?, ?) '
                   'ORDER BY "last_modified", "laestab", "pupil_id", "session_date", "session"')
    assert fields == ["pupil_id", "session_date", "session", "mark", "minutes_late", "last_modified"]
    assert wm_index == 6
    full, _, _ = select_statement(source(), "marks", incremental=False)
    assert 'WHERE "last_modified" IS NOT NULL ORDER BY' in full and "?" not in full


# -- watermarks ----------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [dt.datetime(2026, 9, 3, 8, 45, 1, 250), dt.date(2026, 9, 3), 12345,
                                   b"\x00\x00\x00\x00\x00\x01\x86\xa0"])
def test_watermarks_round_trip_through_text(value):
    assert parse_watermark(render_watermark(value)) == value


def test_watermark_store_round_trip(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'store.sqlite'}")
    metadata.create_all(engine, tables=[watermarks])
    store = SimpleNamespace(engine=engine)
    at = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.timezone.utc)
    assert watermark_get(store, "mis_hosted", "marks") is None
    watermark_set(store, "mis_hosted", "marks", None, at)           # nothing safe yet: no row
    assert watermark_get(store, "mis_hosted", "marks") is None
    watermark_set(store, "mis_hosted", "marks", "2026-09-03T08:45:00", at)
    watermark_set(store, "mis_hosted", "marks", "2026-09-04T08:45:00", at)
    watermark_set(store, "mis_hosted", "pupils", "2026-09-01T07:00:00", at)
    assert watermark_get(store, "mis_hosted", "marks") == "2026-09-04T08:45:00"
    assert watermark_get(store, "mis_hosted", "pupils") == "2026-09-01T07:00:00"


# -- pulling from a fake driver --------------------------------------------------------------------

class FakeCursor:
    def __init__(self, rows, fail_after=None):
        self.rows, self.pos, self.fail_after = rows, 0, fail_after
        self.executed = []

    def execute(self, sql, *params):
        self.executed.append((sql, params))
        since = params[0] if params and "> ?" in sql else None
        if since is not None:
            self.rows = [r for r in self.rows if r[6] > since]
        return self

    def fetchmany(self, n):
        if self.fail_after is not None and self.pos >= self.fail_after:
            self.fail_after = None
            raise pyodbc.OperationalError("08S01", "[08S01] communication link failure")
        batch = self.rows[self.pos:self.pos + n]
        self.pos += len(batch)
        return batch


class FakeConnection:
    def __init__(self, cursor):
        self._cursor = cursor
        self.closed = False

    def cursor(self):
        return self._cursor

    def close(self):
        self.closed = True


def ts(minute: int) -> dt.datetime:
    return dt.datetime(2026, 9, 3, 8, minute)


def mark_row(laestab, pupil, minute, mark="/"):
    """(pupil_id, session_date, session, mark, minutes_late, last_modified, <watermark>, laestab)."""
    return (pupil, dt.date(2026, 9, 3), "AM", mark, None, ts(minute), ts(minute), laestab)


def fake_driver(monkeypatch, *cursors):
    queue = list(cursors)
    connections = []

    def connect(src):
        item = queue.pop(0)
        if isinstance(item, Exception):
            raise item
        conn = FakeConnection(item)
        connections.append(conn)
        return conn

    sleeps = []
    monkeypatch.setattr(odbc, "_connect", connect)
    monkeypatch.setattr(odbc, "_sleep", sleeps.append)
    return connections, sleeps


def rows_of(extract: Extract) -> list[dict]:
    return list(csv.DictReader(io.StringIO(extract.data.decode("utf-8"))))


def test_chunks_never_split_a_watermark_value(monkeypatch):
    # chunk_rows 4: minutes 41,42,42,42 | 42,42 would split the tie at 42 -> first chunk takes all five 42s
    rows = [mark_row("9992001", "1", 41)] + [mark_row("9992001", str(p), 42) for p in range(2, 7)] + \
           [mark_row("9992001", str(p), 43) for p in range(7, 10)]
    fake_driver(monkeypatch, FakeCursor(rows))
    extracts = list(pull(source(), "marks", since=None, now=NOW))
    assert [e.rows for e in extracts] == [6, 3]
    assert [e.chunk_watermark for e in extracts] == ["2026-09-03T08:42:00", "2026-09-03T08:43:00"]


def test_a_chunk_splits_by_school_and_only_its_last_extract_moves_the_watermark(monkeypatch):
    rows = [mark_row("9992001", "1", 41), mark_row("9992002", "1", 41), mark_row("9992001", "2", 42),
            mark_row("9992002", "2", 43), mark_row("9992003", "1", 44)]
    fake_driver(monkeypatch, FakeCursor(rows))
    extracts = list(pull(source(), "marks", since="2026-09-03T08:00:00", now=NOW))
    assert [(e.laestab, e.chunk, e.rows) for e in extracts] == [
        ("9992001", 1, 2), ("9992002", 1, 2), ("9992003", 2, 1)]
    # a watermark is safe to store only once the whole chunk is landed
    assert [e.watermark for e in extracts] == [
        "2026-09-03T08:00:00", "2026-09-03T08:43:00", "2026-09-03T08:44:00"]


def test_first_chunk_has_nothing_safe_to_store_before_its_last_extract(monkeypatch):
    rows = [mark_row("9992001", "1", 41), mark_row("9992002", "1", 41)]
    fake_driver(monkeypatch, FakeCursor(rows))
    assert [e.watermark for e in pull(source(), "marks", since=None, now=NOW)] == [None, "2026-09-03T08:41:00"]


def test_extract_csv_parses_with_the_odbc_marks_layout(monkeypatch):
    layout = load_config().layout("odbc-marks")
    row = ("A1", dt.date(2026, 9, 3), "PM", "L", 12, dt.datetime(2026, 9, 3, 13, 20, 5),
           dt.datetime(2026, 9, 3, 13, 20, 5), "9992001")
    fake_driver(monkeypatch, FakeCursor([row]))
    (extract,) = pull(source(timezone="Europe/London"), "marks", since=None, now=NOW)
    assert extract.layout == "odbc-marks"
    assert layout.parse_filename(extract.file_name) == {"laestab": "9992001", "extract_date": "20261130",
                                                        "extract_time": "0915"}
    reader = csv.DictReader(io.StringIO(extract.data.decode(layout.encoding)), delimiter=layout.delimiter)
    (parsed,) = list(reader)
    assert set(layout.columns.values()) <= set(reader.fieldnames)
    assert parsed[layout.columns["school_pupil_id"]] == "A1"
    assert dt.datetime.strptime(parsed[layout.columns["session_date"]], layout.date_format).date() == dt.date(2026, 9, 3)
    assert parsed[layout.columns["session"]] in layout.sessions.values()
    assert parsed[layout.columns["mark"]] == "L"
    assert parsed[layout.columns["minutes_late"]] == "12"
    assert dt.datetime.fromisoformat(parsed[layout.columns["updated_at"]]) == \
        dt.datetime(2026, 9, 3, 12, 20, 5, tzinfo=dt.timezone.utc)     # 13:20 BST


def test_pupils_extract_parses_with_the_odbc_pupils_layout(monkeypatch):
    layout = load_config().layout("odbc-pupils")
    row = ("A1", "A999000000001", "O'Brien", "Zoë", None, dt.date(2019, 6, 2), "F", "ZZ1 1XX", "3",
           dt.date(2024, 9, 3), None, "K", True, dt.datetime(2026, 9, 1, 7, 0), "9992001")
    fake_driver(monkeypatch, FakeCursor([row]))
    (extract,) = pull(source(), "pupils", since=None, now=NOW)
    assert layout.parse_filename(extract.file_name) == {"laestab": "9992001", "extract_date": "20261130"}
    (parsed,) = rows_of(extract)
    assert parsed[layout.columns["forename"]] == "Zoë"
    assert parsed[layout.columns["surname"]] == "O'Brien"
    assert parsed[layout.columns["dob"]] == "2019-06-02"
    assert parsed[layout.columns["fsm_eligible"]] == "Y"
    assert parsed[layout.columns["leaving_date"]] == ""


def test_a_school_value_that_is_not_a_laestab_is_a_clear_error(monkeypatch):
    fake_driver(monkeypatch, FakeCursor([mark_row("ABC", "1", 41)]))
    with pytest.raises(OdbcSourceError, match="not a 7-digit LAESTAB"):
        list(pull(source(), "marks", since=None, now=NOW))


def test_a_dropped_connection_mid_pull_resumes_after_the_last_chunk(monkeypatch):
    rows = [mark_row("9992001", str(p), 40 + p) for p in range(10)]
    first = FakeCursor(rows, fail_after=8)       # chunk 1 yielded, chunk 2 read, then the link drops
    connections, sleeps = fake_driver(monkeypatch, first, FakeCursor(rows))
    extracts = list(pull(source(), "marks", since=None, now=NOW))
    assert sum(e.rows for e in extracts) == 10
    pupils = [r["pupil_id"] for e in extracts for r in rows_of(e)]
    assert pupils == [str(p) for p in range(10)]
    assert connections[1]._cursor.executed[0][1] == (ts(43),)   # resumed after chunk 1's watermark
    assert sleeps == [0.0] and all(c.closed for c in connections)


def test_driver_failures_are_retried_then_reported_without_the_password(monkeypatch):
    failure = pyodbc.OperationalError(
        "08001", f'[08001] connection to server at "db.example", port 5432 failed: timeout; pwd={SECRET} (101)')
    src = source(max_retries=2, backoff_seconds=0.5)
    _, sleeps = fake_driver(monkeypatch, failure, failure, failure)
    with pytest.raises(OdbcSourceError) as caught:
        list(pull(src, "marks", since=None, now=NOW))
    message = str(caught.value)
    assert sleeps == [0.5, 1.0]
    assert SECRET not in message and "***" in message
    assert "'mis_hosted'" in message and "after 3 attempts" in message and "TETHER_MIS_ODBC" in message
    assert caught.value.__cause__ is None


def test_a_refused_login_is_not_retried(monkeypatch):
    failure = pyodbc.OperationalError("28P01", 'FATAL: password authentication failed for user "u"')
    _, sleeps = fake_driver(monkeypatch, failure)
    with pytest.raises(OdbcSourceError, match="user name and password"):
        list(pull(source(), "marks", since=None, now=NOW))
    assert sleeps == []


def test_query_errors_name_the_table_and_hide_quoted_values(monkeypatch):
    class BadCursor(FakeCursor):
        def execute(self, sql, *params):
            raise pyodbc.DataError("22007", 'ERROR: invalid input syntax for type date: "2019-13-02"')

    _, sleeps = fake_driver(monkeypatch, BadCursor([]))
    with pytest.raises(OdbcSourceError) as caught:
        list(pull(source(), "marks", since=None, now=NOW))
    assert "2019-13-02" not in str(caught.value) and "dbo.mis_marks" in str(caught.value)
    assert sleeps == []


# -- query timeout and overlap window -------------------------------------------------------------

def test_timeout_and_overlap_options_have_defaults_and_are_checked():
    s = source()
    assert (s.query_timeout_seconds, s.watermark_overlap_seconds, s.watermark_overlap_count) == (300, 600.0, 0)
    s = source(query_timeout_seconds=30, watermark_overlap_seconds=3600, watermark_overlap_count=50)
    assert (s.query_timeout_seconds, s.watermark_overlap_seconds, s.watermark_overlap_count) == (30, 3600.0, 50)
    for bad in ({"query_timeout_seconds": -1}, {"watermark_overlap_seconds": "ten"},
                {"watermark_overlap_count": 1.5}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            source(**bad)


def test_the_overlap_window_reaches_below_each_kind_of_watermark():
    s = source(watermark_overlap_seconds=600, watermark_overlap_count=5)
    assert odbc.overlap_below(s, dt.datetime(2026, 11, 30, 9, 0)) == dt.datetime(2026, 11, 30, 8, 50)
    assert odbc.overlap_below(s, dt.date(2026, 11, 30)) == dt.date(2026, 11, 29)     # whole days
    assert odbc.overlap_below(s, 1000) == 995
    assert odbc.overlap_below(s, bytes.fromhex("0000000000000103")) == bytes.fromhex("00000000000000fe")
    assert odbc.overlap_below(s, b"\x00\x02") == b"\x00\x00"                       # never below zero


def test_row_fingerprints_are_keyed_and_change_with_any_value():
    row = ("P001", dt.date(2026, 9, 7), "AM", "/", None, dt.datetime(2026, 9, 7, 8, 45))
    a = odbc.row_fingerprint(b"k1", "marks", "9993001", row)
    assert a == odbc.row_fingerprint(b"k1", "marks", "9993001", row) and len(a) == 32
    assert a != odbc.row_fingerprint(b"k2", "marks", "9993001", row)
    assert a != odbc.row_fingerprint(b"k1", "marks", "9993001", row[:3] + ("N",) + row[4:])
    assert "P001" not in a


class _HangingCursor:
    """execute() blocks until cancel() is called from another thread, as a driver would."""

    def __init__(self):
        import threading
        self.cancelled = threading.Event()

    def execute(self, sql, *params):
        assert self.cancelled.wait(30), "never cancelled"
        raise pyodbc.Error("57014", "[57014] ERROR: canceling statement due to user request")

    def cancel(self):
        self.cancelled.set()


def test_a_statement_over_the_query_timeout_is_cancelled_and_reported_in_one_line(monkeypatch):
    cursor = _HangingCursor()
    conn = SimpleNamespace(cursor=lambda: cursor, close=lambda: None)
    monkeypatch.setattr(odbc, "_connect", lambda src: conn)
    monkeypatch.setattr(odbc, "pyodbc", pyodbc)
    monkeypatch.setattr(odbc, "driver_manager", lambda: pyodbc)
    s = source(query_timeout_seconds=1, max_retries=3)
    with pytest.raises(OdbcSourceError) as caught:
        list(pull(s, "marks", since=None, now=NOW))
    message = str(caught.value)
    assert cursor.cancelled.is_set()
    assert "'mis_hosted'" in message and "relation 'marks'" in message and "'dbo.mis_marks'" in message
    assert "query_timeout_seconds = 1" in message and "\n" not in message and SECRET not in message
