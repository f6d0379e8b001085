"""SFTP and ODBC sources wired into the pipeline: pulled, landed once, staged, measured.

The connectors have their own tests (test_sftp.py, test_odbc.py); these show the whole way from
a real OpenSSH server and a real ODBC driver to the staged tables and the attendance measures.
"""
from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
import time
from pathlib import Path

import pandas as pd
import psycopg2
import pytest
from psycopg2 import sql
from sqlalchemy.engine import make_url
from zoneinfo import ZoneInfo

from connectors.store_setup import init_store
from orchestration import stages
from orchestration.resources import TetherContext
from schemas import tables as t
from sharing.keys import write_new_keys
from synthetic.generate import generate_la
from transforms.pseudonymise import pupil_ref
from tests.integration.conftest import require_env

pytestmark = pytest.mark.integration
AS_OF = dt.datetime(2026, 11, 30, 9, 45, tzinfo=ZoneInfo("Europe/London"))


@pytest.fixture(scope="module")
def la(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("la")
    generate_la(root, seed=5, n_schools=3, n_pupils=200, as_of=AS_OF)
    return root


def _context(tmp_path: Path, config_dir: Path, monkeypatch) -> TetherContext:
    for k, v in write_new_keys(tmp_path / "keys").items():
        monkeypatch.setenv(k, v)
    url = f"sqlite:///{tmp_path / 'tether.sqlite'}"
    init_store(url)[0].dispose()
    return TetherContext(url, str(config_dir), str(tmp_path / "data"),
                         AS_OF.isoformat())


def _sftp_source(source_id: str, endpoint, options: list[str], files: dict[str, str]) -> str:
    """sources.toml for an SFTP source on the test server (connection details from services.env)."""
    lines = [f"[sources.{source_id}]", 'transport = "sftp"']
    lines += [f'{opt}_env = "TETHER_TEST_SFTP_{var}"' for opt, var in
              (("host", "HOST"), ("port", "PORT"), ("username", "USER"), ("key_file", "KEY_FILE"),
               ("known_hosts_file", "KNOWN_HOSTS"))]
    lines += [f'remote_dir = "{endpoint.remote_dir}"', *options]
    for pattern, layout in files.items():
        lines += [f"[[sources.{source_id}.files]]", f'pattern = "{pattern}"', f'layout = "{layout}"']
    return "\n".join(lines) + "\n"


def test_a_term_of_files_over_sftp_is_pulled_and_loaded(la, tmp_path, monkeypatch, sftp_endpoint, sftp_client, sftp_env):
    endpoint = sftp_endpoint()
    local = sorted((la / "inbox" / "school_mis_a").iterdir())
    for path in local:
        sftp_client.put(str(path), f"{endpoint.remote_dir}/{path.name}")
    config = tmp_path / "config"
    shutil.copytree(la / "config", config)
    (config / "sources.toml").write_text(_sftp_source(
        "school_mis_a", endpoint, ['completeness = "stable"', "stable_seconds = 0", 'after_success = "archive"',
                                   f'archive_dir = "{endpoint.archive_dir}"'],
        {"*_attendance_*.csv": "mis-a", "*_pupils_*.csv": "mis-a-pupils"}))
    ctx = _context(tmp_path, config, monkeypatch)
    source = ctx.config.sources["school_mis_a"]
    landed = stages.land_source(ctx, source)
    distinct = len({p.read_bytes() for p in local})          # identical weekly rolls land once
    assert landed["files_new"] == distinct
    assert landed["files_new"] + landed["files_already_landed"] == len(local)
    assert sftp_client.listdir(endpoint.remote_dir) == []           # archived after success
    assert stages.land_source(ctx, source)["files_new"] == 0         # nothing left to take
    staged = stages.stage_source(ctx, source)
    assert staged["rows_read"] == staged["rows_staged"] + staged.get("rows_superseded", 0) + staged["rows_quarantined"]

    truth = pd.read_csv(la / "ground_truth" / "pupils.csv", dtype=str, keep_default_na=False)
    truth = truth[truth["source_id"] == "school_mis_a"]
    stages.link(ctx)
    stages.compute_measures(ctx)
    measures = ctx.store.read(t.attendance_measures, where=t.attendance_measures.c.period == "academic_year")
    got = measures.set_index(["laestab", "pupil_ref"])["possible_sessions"]
    for row in truth.itertuples(index=False):
        assert got[(row.laestab, pupil_ref(ctx.keys.token_key, row.laestab, row.school_pupil_id))] == int(row.possible_sessions)


def test_an_sftp_poll_goes_on_from_the_store_in_another_pod(la, tmp_path, monkeypatch, sftp_endpoint, sftp_client):
    """Two pods (one store, data folders of their own): what one poll saw, the next poll in the other
    pod knows — files waiting to become stable, files landed and left on the server."""
    from connectors import sftp
    endpoint = sftp_endpoint()
    local = sorted((la / "inbox" / "school_mis_a").glob("*_attendance_*.csv"))[:2]
    for path in local:
        sftp_client.put(str(path), f"{endpoint.remote_dir}/{path.name}")
    config = tmp_path / "config"
    shutil.copytree(la / "config", config)
    (config / "sources.toml").write_text(_sftp_source(
        "school_mis_a", endpoint, ['completeness = "stable"', "stable_seconds = 1", 'after_success = "leave"'],
        {"*_attendance_*.csv": "mis-a"}))
    pod_a = _context(tmp_path, config, monkeypatch)
    pod_b = TetherContext(pod_a.database_url, str(config), str(tmp_path / "pod_b"), AS_OF.isoformat())
    source = pod_a.config.sources["school_mis_a"]

    first = stages.land_source(pod_a, source)
    assert first["files_incomplete"] == len(local) and first["files_new"] == 0     # seen once: not yet stable
    time.sleep(1.1)
    assert stages.land_source(pod_b, source)["files_new"] == len(local)            # stable since pod A saw them

    downloads = []
    real_download = sftp._download
    monkeypatch.setattr(sftp, "_download", lambda *a: downloads.append(a) or real_download(*a))
    again = stages.land_source(pod_a, source)
    assert again["files_already_landed"] == len(local) and downloads == []         # left in place, known
    assert sorted(sftp_client.listdir(endpoint.remote_dir)) == [p.name for p in local]
    assert not (tmp_path / "data" / "state").exists() and not (tmp_path / "pod_b" / "state").exists()
    stored = pod_a.store.read(t.sftp_poll_state)
    assert sorted(stored["kind"]) == ["landed"] * len(local) + ["observed"] * len(local)
    assert not {p.name for p in local} & set(stored["name_key"])                   # never the names


def _clone_mis_database() -> str:
    """A private copy of the seeded MIS database, so a test may write to it."""
    admin = make_url(require_env("TETHER_TEST_PG_ADMIN_URL")["TETHER_TEST_PG_ADMIN_URL"])
    name = f"tether_test_mis_{secrets.token_hex(4)}"
    conn = psycopg2.connect(host=admin.host, port=admin.port, user=admin.username, dbname=admin.database)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {} TEMPLATE tether_mis").format(sql.Identifier(name)))
    conn.close()
    return name


def _drop(name: str) -> None:
    admin = make_url(os.environ["TETHER_TEST_PG_ADMIN_URL"])
    conn = psycopg2.connect(host=admin.host, port=admin.port, user=admin.username, dbname=admin.database)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    conn.close()


HOSTED_MIS = """
[sources.hosted_mis]
transport = "odbc"
connection_env = "TETHER_MIS_ODBC"
school_column = "laestab"
chunk_rows = 2000
[sources.hosted_mis.relations.marks]
table = "mis_marks"
watermark_column = "last_modified"
[sources.hosted_mis.relations.pupils]
table = "mis_pupils"
watermark_column = "last_modified"
"""


@pytest.fixture
def mis_database():
    base = require_env("TETHER_TEST_ODBC_CONNECTION")["TETHER_TEST_ODBC_CONNECTION"]
    name = _clone_mis_database()
    yield name, base.replace("Database=tether_mis", f"Database={name}")
    _drop(name)


def _hosted_mis(mis_database, tmp_path, monkeypatch):
    """A deployment with the hosted MIS as its one ODBC source, and an autocommit connection to
    that MIS database (as the school's MIS writes to it)."""
    name, connection = mis_database
    monkeypatch.setenv("TETHER_MIS_ODBC", connection)
    config = tmp_path / "config"
    config.mkdir()
    (config / "sources.toml").write_text(HOSTED_MIS)
    ctx = _context(tmp_path, config, monkeypatch)
    admin = make_url(os.environ["TETHER_TEST_PG_ADMIN_URL"])
    mis = psycopg2.connect(host=admin.host, port=admin.port, user=admin.username, dbname=name)
    mis.autocommit = True
    return ctx, ctx.config.sources["hosted_mis"], mis


def test_odbc_mis_is_pulled_incrementally_into_the_pipeline(mis_database, tmp_path, monkeypatch):
    ctx, source, mis = _hosted_mis(mis_database, tmp_path, monkeypatch)
    with mis.cursor() as cur:
        cur.execute("SELECT laestab, pupil_id, session_date, session, mark FROM mis_marks")
        mis_marks = cur.fetchall()
        cur.execute("SELECT count(*) FROM mis_pupils")
        n_pupils = cur.fetchone()[0]
    n_marks = len(mis_marks)
    codes = ctx.config.codes.codes
    # The synthetic MIS plants bad marks (a withdrawn H, an unknown Q9, a lower-case n): those, and
    # only those, are quarantined; every other MIS mark is staged.
    bad = [m for m in mis_marks if m[4] not in codes or not codes[m[4]].in_force_on(m[2])]
    assert bad, "the seeded MIS database holds no bad marks: is it seeded by the current generator?"

    landed = stages.land_source(ctx, source)
    assert landed["marks_rows"] == n_marks and landed["pupils_rows"] == n_pupils
    staged = stages.stage_source(ctx, source)
    assert staged["rows_read"] == staged["rows_staged"] + staged.get("rows_superseded", 0) + staged["rows_quarantined"] \
        == n_marks + n_pupils
    quarantine = ctx.store.read(t.quarantine)
    marks_quarantined = quarantine[quarantine["file_name"].str.contains("_odbc-marks_")]
    assert sorted(marks_quarantined["field"]) == ["mark"] * len(bad)
    for mark in {m[4] for m in bad}:
        assert marks_quarantined["reason"].str.contains(f"mark {mark!r}", regex=False).sum() == \
            sum(m[4] == mark for m in bad)
    stored = ctx.store.read(t.staged_marks, columns=["laestab", "pupil_ref", "session_date", "session"])
    good = {(m[0].strip(), pupil_ref(ctx.keys.token_key, m[0].strip(), m[1]), m[2], m[3])
            for m in mis_marks if m not in bad}
    assert set(map(tuple, stored.to_numpy().tolist())) == good and len(stored) == n_marks - len(bad)

    # the school corrects one mark and takes a new register: only those two rows come next time
    with mis.cursor() as cur:
        cur.execute("SELECT laestab, pupil_id, session_date, session FROM mis_marks WHERE mark = 'N' LIMIT 1")
        corrected = cur.fetchone()
        cur.execute("UPDATE mis_marks SET mark = 'I', last_modified = now() WHERE laestab = %s AND pupil_id = %s "
                    "AND session_date = %s AND session = %s", corrected)
        cur.execute("INSERT INTO mis_marks SELECT laestab, pupil_id, DATE '2026-11-30', 'PM', '/', NULL, now() "
                    "FROM mis_marks WHERE laestab = %s AND pupil_id = %s LIMIT 1", corrected[:2])
    mis.close()
    again = stages.land_source(ctx, source)
    assert again["marks_rows"] == 2 and again["pupils_rows"] == 0
    stages.stage_source(ctx, source)
    marks = ctx.store.read(t.staged_marks)
    assert len(marks) == n_marks - len(bad) + 1
    ref = pupil_ref(ctx.keys.token_key, corrected[0].strip(), corrected[1])
    row = marks[(marks["pupil_ref"] == ref) & (marks["session_date"] == corrected[2]) & (marks["session"] == corrected[3])]
    assert row["mark"].tolist() == ["I"]
    assert stages.land_source(ctx, source)["marks_rows"] == 0


def test_an_odbc_mark_committed_late_below_the_watermark_is_staged_once(mis_database, tmp_path, monkeypatch):
    ctx, source, mis = _hosted_mis(mis_database, tmp_path, monkeypatch)
    with mis.cursor() as cur:
        cur.execute("SELECT count(*) FROM mis_marks")
        n_marks = cur.fetchone()[0]
    stages.land_source(ctx, source)
    stages.stage_source(ctx, source)
    staged_before = len(ctx.store.read(t.staged_marks, columns=["laestab"]))
    watermark = ctx.store.records(t.watermarks, t.watermarks.c.relation == "marks")[0]["value"]

    # A register saved in a transaction that began five minutes before the last pulled change,
    # committed only now: its last_modified is below the stored watermark, inside the window.
    with mis.cursor() as cur:
        cur.execute("SELECT laestab, pupil_id FROM mis_marks LIMIT 1")
        laestab, pupil = cur.fetchone()
        cur.execute("INSERT INTO mis_marks VALUES (%s, %s, DATE '2026-11-30', 'PM', 'L', 7, "
                    "(SELECT max(last_modified) FROM mis_marks) - interval '5 minutes')", (laestab, pupil))
    mis.close()

    again = stages.land_source(ctx, source)
    assert again["marks_rows"] == 1 and again["marks_extracts"] == 1
    stages.stage_source(ctx, source)
    assert stages.land_source(ctx, source)["marks_rows"] == 0                   # read once, not again
    assert ctx.store.records(t.watermarks, t.watermarks.c.relation == "marks")[0]["value"] == watermark

    marks = ctx.store.read(t.staged_marks)
    assert len(marks) == staged_before + 1
    ref = pupil_ref(ctx.keys.token_key, laestab.strip(), pupil)
    late = marks[(marks["pupil_ref"] == ref) & (marks["session_date"] == dt.date(2026, 11, 30)) & (marks["session"] == "PM")]
    assert late["mark"].tolist() == ["L"]
    manifest = ctx.store.read(t.landing_manifest)
    marks_files = manifest[manifest["layout"] == "odbc-marks"]
    assert int(marks_files["rows_read"].sum()) == n_marks + 1                   # nothing counted twice
    assert (manifest["rows_read"] == manifest["rows_staged"] + manifest["rows_superseded"].fillna(0)
            + manifest["rows_quarantined"]).all()


def _sensor_tick(sensor, ctx: TetherContext, cursor=None):
    import dagster as dg
    from orchestration.resources import TetherResource
    resource = TetherResource(database_url=ctx.database_url, config_dir=str(ctx.config_dir), data_dir=str(ctx.data_dir))
    context = dg.build_sensor_context(cursor=cursor, resources={"tether": resource})
    return sensor(context), context.cursor


def test_sftp_sensor_requests_a_run_only_for_files_not_yet_landed(la, tmp_path, monkeypatch, sftp_endpoint, sftp_client):
    import dagster as dg
    from orchestration.sensors import ingest_job, source_sensor
    endpoint = sftp_endpoint()
    config = tmp_path / "config"
    config.mkdir()
    (config / "sources.toml").write_text(_sftp_source("school_sftp", endpoint, ['completeness = "rename"'],
                                                      {"*_attendance_*.csv": "mis-a"}))
    ctx = _context(tmp_path, config, monkeypatch)
    source = ctx.config.sources["school_sftp"]
    sensor = source_sensor(source, ingest_job(source))
    result, cursor = _sensor_tick(sensor, ctx)
    assert isinstance(result, dg.SkipReason)
    first = sorted((la / "inbox" / "school_mis_a").glob("*_attendance_*.csv"))[0]
    sftp_client.put(str(first), f"{endpoint.remote_dir}/{first.name}")
    result, cursor = _sensor_tick(sensor, ctx, cursor)
    assert isinstance(result, dg.RunRequest)
    assert isinstance(_sensor_tick(sensor, ctx, cursor)[0], dg.SkipReason)     # same files: no second run
    stages.land_source(ctx, source)                                          # the run lands it (left in place)
    assert isinstance(_sensor_tick(sensor, ctx)[0], dg.SkipReason)            # landed: nothing to ask for


def test_odbc_sensor_requests_a_run_when_the_watermark_moves(mis_database, tmp_path, monkeypatch):
    import dagster as dg
    from orchestration.sensors import ingest_job, source_sensor
    name, connection = mis_database
    monkeypatch.setenv("TETHER_MIS_ODBC", connection)
    config = tmp_path / "config"
    config.mkdir()
    (config / "sources.toml").write_text(HOSTED_MIS)
    ctx = _context(tmp_path, config, monkeypatch)
    source = ctx.config.sources["hosted_mis"]
    sensor = source_sensor(source, ingest_job(source))
    result, cursor = _sensor_tick(sensor, ctx)
    assert isinstance(result, dg.RunRequest)               # nothing pulled yet
    stages.land_source(ctx, source)
    assert isinstance(_sensor_tick(sensor, ctx, cursor)[0], dg.SkipReason)
    admin = make_url(os.environ["TETHER_TEST_PG_ADMIN_URL"])
    mis = psycopg2.connect(host=admin.host, port=admin.port, user=admin.username, dbname=name)
    with mis, mis.cursor() as cur:
        cur.execute("UPDATE mis_marks SET mark = 'I', last_modified = now() WHERE ctid = (SELECT min(ctid) FROM mis_marks)")
    mis.close()
    moved, _ = _sensor_tick(sensor, ctx, cursor)
    assert isinstance(moved, dg.RunRequest) and moved.tags["tether/relations"] == "marks"
