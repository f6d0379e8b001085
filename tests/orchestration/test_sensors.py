"""The folder sensor asks for one run per set of new complete files, and never twice."""
from pathlib import Path

import dagster as dg

from orchestration.resources import TetherResource
from orchestration.sensors import folder_sensor, ingest_job
from schemas.config import load_config


def _source(tmp_path: Path):
    (tmp_path / "config").mkdir()
    (tmp_path / "inbox").mkdir()
    (tmp_path / "config" / "sources.toml").write_text("""
[sources.school]
transport = "folder"
path = "inbox"
[[sources.school.files]]
pattern = "*_attendance_*.csv"
layout = "mis-a"
""")
    return load_config(tmp_path / "config").sources["school"]


def _tick(sensor, tmp_path, cursor=None):
    resource = TetherResource(database_url=f"sqlite:///{tmp_path / 't.sqlite'}", config_dir=str(tmp_path / "config"),
                              data_dir=str(tmp_path / "data"))
    context = dg.build_sensor_context(cursor=cursor, resources={"tether": resource})
    return sensor(context), context.cursor


def test_new_complete_files_request_one_run(tmp_path):
    source = _source(tmp_path)
    sensor = folder_sensor(source, ingest_job(source))
    result, cursor = _tick(sensor, tmp_path)
    assert isinstance(result, dg.SkipReason)

    (tmp_path / "inbox" / "8862001_attendance_20261127.csv").write_text("x")
    (tmp_path / "inbox" / "notes.txt").write_text("ignored: no pattern matches")
    (tmp_path / "inbox" / "8862001_attendance_20261130.csv.part").write_text("still uploading")
    result, cursor = _tick(sensor, tmp_path, cursor)
    assert isinstance(result, dg.RunRequest) and result.tags["tether/files"] == "1"

    again, cursor = _tick(sensor, tmp_path, cursor)        # nothing new: no second run
    assert isinstance(again, dg.SkipReason)

    (tmp_path / "inbox" / "8862001_attendance_20261130.csv").write_text("y")
    third, _ = _tick(sensor, tmp_path, cursor)
    assert isinstance(third, dg.RunRequest) and third.run_key != result.run_key


def test_missing_folder_is_a_skip_with_a_reason(tmp_path):
    source = _source(tmp_path)
    (tmp_path / "inbox").rmdir()
    result, _ = _tick(folder_sensor(source, ingest_job(source)), tmp_path)
    assert isinstance(result, dg.SkipReason) and "does not exist" in result.skip_message


REMOTE_SOURCES_TOML = """
[sources.schools_sftp]
transport = "sftp"
host = "sftp.example.invalid"
port = 22
username = "tether"
key_file = "/etc/tether/sftp_key"
known_hosts_file = "/etc/tether/known_hosts"
remote_dir = "/outgoing"
poll_seconds = 300
[[sources.schools_sftp.files]]
pattern = "*_attendance_*.csv"
layout = "mis-a"

[sources.trust_mis]
transport = "odbc"
connection_env = "TETHER_TRUST_MIS_ODBC"
school_column = "laestab"
poll_seconds = 600
[sources.trust_mis.relations.marks]
table = "mis_marks"
watermark_column = "last_modified"
[sources.trust_mis.relations.pupils]
table = "mis_pupils"
watermark_column = "last_modified"
"""


def test_every_source_sensor_is_on_by_default_and_says_its_interval(tmp_path):
    from orchestration.sensors import source_sensor
    source = _source(tmp_path)
    (tmp_path / "config" / "sources.toml").write_text(REMOTE_SOURCES_TOML)
    remote = load_config(tmp_path / "config").sources
    cases = [(source, 60), (remote["schools_sftp"], 300), (remote["trust_mis"], 600)]
    for src, interval in cases:
        sensor = source_sensor(src, ingest_job(src))
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING, src.source_id
        assert sensor.minimum_interval_seconds == interval
        assert f"Every {interval} s" in sensor.description and "safe to leave on" in sensor.description
