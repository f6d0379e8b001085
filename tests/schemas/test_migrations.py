"""The Alembic migrations build exactly the schema in schemas/tables.py, on both engines."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from connectors.store import MIGRATIONS, Store, alembic_config
from schemas.tables import metadata

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()

@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request):
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "fresh_pg_url")


def _state(store: Store) -> tuple[str | None, list]:
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return context.get_current_revision(), compare_metadata(context, metadata)


def _columns(store: Store) -> dict[str, list[str]]:
    inspector = inspect(store.engine)
    return {t: [f"{c['name']} {c['type']} {c['nullable']}" for c in inspector.get_columns(t)]
            for t in inspector.get_table_names()}


def test_the_migrations_live_inside_the_package():
    assert MIGRATIONS == Path(__import__("schemas").__file__).parent / "migrations"
    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_heads() == [HEAD]          # one line of revisions, no branches
    assert [r.revision for r in script.walk_revisions()][-1] == "0001"


def test_a_fresh_database_migrates_to_exactly_the_metadata(empty_url):
    store = Store(empty_url)
    try:
        revision, diffs = _state(store)  # nothing there yet: every table is missing
        assert revision is None
        assert sorted(d[1].name for d in diffs if d[0] == "add_table") == sorted(metadata.tables)
        store.migrate()
        revision, diffs = _state(store)
        assert revision == HEAD
        assert diffs == []
        tables = set(inspect(store.engine).get_table_names())
        assert tables == set(metadata.tables) | {"alembic_version"}
    finally:
        store.dispose()


def test_migrating_twice_is_a_no_op(empty_url):
    store = Store(empty_url)
    try:
        store.migrate()
        before = _columns(store)
        store.migrate()
        assert _state(store) == (HEAD, [])
        assert _columns(store) == before
    finally:
        store.dispose()


def test_sqlite_is_in_wal_mode_with_foreign_keys_and_a_busy_timeout(sqlite_url):
    store = Store(sqlite_url)
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    finally:
        store.dispose()


def test_two_processes_migrating_one_sqlite_file_at_once_both_succeed(sqlite_url):
    code = "import sys; from connectors.store import Store; Store(sys.argv[1]).migrate()"
    procs = [subprocess.Popen([sys.executable, "-c", code, sqlite_url], stderr=subprocess.PIPE) for _ in range(2)]
    results = [(p.wait(timeout=120), p.stderr.read().decode()) for p in procs]
    assert [rc for rc, _ in results] == [0, 0], results
    store = Store(sqlite_url)
    try:
        assert _state(store) == (HEAD, [])
    finally:
        store.dispose()


def test_marks_staged_before_the_weekly_sums_existed_are_summed_by_the_migration(empty_url):
    import datetime as dt

    import pandas as pd
    from alembic import command

    from connectors.attendance import refresh_weeks, school_weeks
    from schemas import tables as t

    store = Store(empty_url)
    try:
        config = alembic_config()
        with store.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0006")
        days = [dt.date(2026, 9, 7) + dt.timedelta(days=n) for n in range(12)]
        marks = pd.DataFrame([{"laestab": "8864001", "pupil_ref": f"{p:064x}", "session_date": d, "session": s,
                               "mark": m, "category": c, "minutes_late": None,
                               "recorded_at": pd.Timestamp("2026-10-10T16:00Z"), "source_id": "s",
                               "file_id": "f" * 64, "row_number": 1}
                              for p in range(3) for d in days for s, (m, c) in
                              zip(("AM", "PM"), (("/", "present"), ("N" if p else "E", "unauthorised")))])
        store.insert(t.staged_marks, marks)
        store.migrate()
        migrated = store.read(t.attendance_weeks)
        refresh_weeks(store, school_weeks(marks))
        pd.testing.assert_frame_equal(migrated, store.read(t.attendance_weeks))
        assert len(migrated) == 3 * 2 and set(migrated["week_start"]) == {dt.date(2026, 9, 7), dt.date(2026, 9, 14)}
    finally:
        store.dispose()
