"""The test MIS database is reseeded whenever the code that makes it changes, never kept stale.

`infra/seed_mis.py` keeps an existing seed only when the generator, the seed and a fingerprint of
the generator's code (this script, `synthetic/`, the built-in layouts) all match what it recorded.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import psycopg2
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import create_pg_database, drop_pg_database

pytestmark = pytest.mark.integration
SEED_MIS = Path(__file__).parents[2] / "infra" / "seed_mis.py"


@pytest.fixture
def seed_mis():
    spec = importlib.util.spec_from_file_location("seed_mis", SEED_MIS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def mis_dsn():
    url = create_pg_database()
    u = make_url(url)
    yield f"host={u.host} port={u.port} user={u.username} dbname={u.database}"
    drop_pg_database(url)


def test_a_seed_is_kept_only_while_the_generator_code_is_unchanged(seed_mis, mis_dsn, capsys):
    assert seed_mis.main(["--dsn", mis_dsn]) == 0
    assert "seeded tether_mis from" in capsys.readouterr().out
    assert seed_mis.main(["--dsn", mis_dsn]) == 0
    assert "already seeded" in capsys.readouterr().out

    with psycopg2.connect(mis_dsn) as conn, conn.cursor() as cur:      # as if synthetic/ had changed
        cur.execute("UPDATE mis_seed SET fingerprint = 'an older generator'")
        cur.execute("DELETE FROM mis_marks WHERE mark = 'Q9'")
    assert seed_mis.main(["--dsn", mis_dsn]) == 0
    assert "seeded tether_mis from" in capsys.readouterr().out
    with psycopg2.connect(mis_dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM mis_marks WHERE mark = 'Q9'")
        assert cur.fetchone()[0] > 0                                      # the current generator's rows


def test_a_seed_from_a_version_that_kept_no_fingerprint_is_replaced(seed_mis, mis_dsn, capsys):
    with psycopg2.connect(mis_dsn) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE mis_seed (generator text, seed integer, pupils integer, marks integer, "
                    "seeded_at timestamptz)")
        cur.execute("INSERT INTO mis_seed VALUES ('synthetic.generate_la', 20260901, 1, 1, now())")
    assert seed_mis.main(["--dsn", mis_dsn]) == 0
    assert "seeded tether_mis from" in capsys.readouterr().out
