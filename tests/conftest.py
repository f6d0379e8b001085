"""Database fixtures: a throw-away SQLite file per test and a PostgreSQL database per session.

PostgreSQL tests never touch a shared database: each session creates `tether_test_<pid>_<hex>`
through the admin URL (TETHER_TEST_PG_ADMIN_URL, default the local `postgres` database) and drops
it afterwards. Its session time zone is Europe/London, so UTC handling is really exercised.
"""
from __future__ import annotations

import os
import secrets

import psycopg2
import pytest
from psycopg2 import sql
from sqlalchemy.engine import make_url

from connectors.store import Store
from schemas.tables import metadata

PG_ADMIN_URL = os.environ.get("TETHER_TEST_PG_ADMIN_URL",
                              "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


def _admin():
    url = make_url(PG_ADMIN_URL)
    conn = psycopg2.connect(host=url.host, port=url.port, user=url.username, password=url.password,
                            dbname=url.database)
    conn.autocommit = True
    return conn


def create_pg_database() -> str:
    """Create a uniquely named empty database; returns its SQLAlchemy URL."""
    name = f"tether_test_{os.getpid()}_{secrets.token_hex(4)}"
    conn = _admin()
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            cur.execute(sql.SQL("ALTER DATABASE {} SET timezone TO 'Europe/London'").format(sql.Identifier(name)))
    finally:
        conn.close()
    return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(url: str) -> None:
    name = make_url(url).database
    conn = _admin()
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    finally:
        conn.close()


@pytest.fixture(scope="session")
def pg_url():
    """A PostgreSQL database of its own for this test session (dropped afterwards)."""
    url = create_pg_database()
    yield url
    drop_pg_database(url)


@pytest.fixture
def fresh_pg_url():
    """An empty PostgreSQL database for one test (dropped afterwards)."""
    url = create_pg_database()
    yield url
    drop_pg_database(url)


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'tether.db'}"


@pytest.fixture(scope="session")
def _pg_store(pg_url):
    store = Store(pg_url)
    store.migrate()
    yield store
    store.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request):
    """A migrated, empty store on each engine."""
    if request.param == "sqlite":
        store = Store(request.getfixturevalue("sqlite_url"))
        store.migrate()
        yield store
        store.dispose()
        return
    store = request.getfixturevalue("_pg_store")
    truncate = sql.SQL("TRUNCATE {} RESTART IDENTITY").format(
        sql.SQL(", ").join(sql.Identifier(t.name) for t in metadata.sorted_tables))
    with store.begin() as conn:
        with conn.connection.driver_connection.cursor() as cursor:
            cursor.execute(truncate)
    yield store
