"""The SFTP source's decisions, without a server: which files are complete, configuration, retries."""
from __future__ import annotations

import json
import socket

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from connectors.sftp import (
    HostKeyError, RemoteEntry, SftpEndpoint, SftpSourceError, free_archive_name, is_in_flight_name,
    matches_patterns, poll_endpoint, select_complete,
)
from schemas.config import ConfigError

CSV = ("*.csv",)


def entry(name: str, size: int = 100, mtime: int = 1_000, is_file: bool = True) -> RemoteEntry:
    return RemoteEntry(name, size, mtime, is_file)


def stable(entries, state, now, seconds=30.0, patterns=CSV):
    complete, incomplete = select_complete(entries, patterns=patterns, completeness="stable",
                                           stable_seconds=seconds, state=state, now=now)
    return [e.name for e in complete], incomplete


# --- stable -----------------------------------------------------------------------------------------

def test_stable_takes_a_file_only_after_it_is_unchanged_for_the_interval():
    state: dict = {}
    assert stable([entry("a.csv")], state, now=100.0) == ([], ["a.csv"])
    assert stable([entry("a.csv")], state, now=129.9) == ([], ["a.csv"])
    assert stable([entry("a.csv")], state, now=130.0) == (["a.csv"], [])


def test_stable_restarts_the_interval_when_size_or_mtime_changes():
    state: dict = {}
    stable([entry("a.csv", size=50)], state, now=100.0)
    assert stable([entry("a.csv", size=80)], state, now=140.0) == ([], ["a.csv"])       # grew
    assert stable([entry("a.csv", size=80, mtime=1_001)], state, now=175.0) == ([], ["a.csv"])  # touched
    assert stable([entry("a.csv", size=80, mtime=1_001)], state, now=204.0) == ([], ["a.csv"])
    assert stable([entry("a.csv", size=80, mtime=1_001)], state, now=205.0) == (["a.csv"], [])


def test_stable_state_is_json_and_forgets_files_that_have_gone():
    state: dict = {}
    stable([entry("a.csv"), entry("b.csv", size=7)], state, now=100.0)
    state = json.loads(json.dumps(state))  # as a sensor cursor would keep it
    assert state["observed"] == {"a.csv": {"size": 100, "mtime": 1_000, "since": 100.0},
                                 "b.csv": {"size": 7, "mtime": 1_000, "since": 100.0}}
    assert stable([entry("b.csv", size=7)], state, now=130.0) == (["b.csv"], [])
    assert set(state["observed"]) == {"b.csv"}


def test_stable_with_a_zero_interval_takes_at_first_sight():
    assert stable([entry("a.csv")], {}, now=0.0, seconds=0) == (["a.csv"], [])


# --- done marker and rename ----------------------------------------------------------------------------

def test_done_marker_releases_only_files_with_a_companion():
    entries = [entry("a.csv"), entry("a.csv.done", size=0), entry("b.csv")]
    complete, incomplete = select_complete(entries, patterns=("*",), completeness="done_marker",
                                           stable_seconds=30, state={}, now=0.0)
    assert [e.name for e in complete] == ["a.csv"] and incomplete == ["b.csv"]


def test_rename_takes_final_names_and_holds_temporary_ones():
    entries = [entry(n) for n in ("a.csv", "b.csv.part", "c.csv.tmp", "d.csv.filepart", ".e.csv", "f.CSV.PART")]
    complete, incomplete = select_complete(entries, patterns=("*",), completeness="rename",
                                           stable_seconds=30, state={}, now=0.0)
    assert [e.name for e in complete] == ["a.csv"]
    assert incomplete == [".e.csv", "b.csv.part", "c.csv.tmp", "d.csv.filepart", "f.CSV.PART"]
    assert is_in_flight_name("x.part") and not is_in_flight_name("x_part.csv")


# --- what counts as a candidate ---------------------------------------------------------------------------

def test_only_regular_files_matching_a_pattern_are_candidates_and_markers_never_are():
    entries = [entry("a.csv"), entry("notes.txt"), entry("sub.csv", is_file=False), entry("x.done")]
    complete, incomplete = select_complete(entries, patterns=("*.csv", "*.done"), completeness="rename",
                                           stable_seconds=0, state={}, now=0.0)
    assert [e.name for e in complete] == ["a.csv"] and incomplete == []
    assert matches_patterns("1234567_attendance_20260907.csv", ("*_attendance_*.csv",))
    assert not matches_patterns("1234567_ATTENDANCE_20260907.csv", ("*_attendance_*.csv",))


def test_complete_files_come_oldest_first():
    entries = [entry("c.csv", mtime=5), entry("a.csv", mtime=9), entry("b.csv", mtime=5)]
    complete, _ = select_complete(entries, patterns=CSV, completeness="rename", stable_seconds=0, state={}, now=0.0)
    assert [e.name for e in complete] == ["b.csv", "c.csv", "a.csv"]


def test_archive_names_never_overwrite():
    taken = {"a.csv", "a.1.csv", "b"}
    assert free_archive_name("z.csv", taken.__contains__) == "z.csv"
    assert free_archive_name("a.csv", taken.__contains__) == "a.2.csv"
    assert free_archive_name("b", taken.__contains__) == "b.1"


# --- configuration -----------------------------------------------------------------------------------

OPTIONS = {"host_env": "MIS_HOST", "port": 2200, "username": "tether", "key_file_env": "MIS_KEY",
           "known_hosts_file": "/etc/tether/known_hosts", "remote_dir": "/outgoing",
           "patterns": ["*_attendance_*.csv"], "completeness": "done_marker", "after_success": "archive",
           "archive_dir": "done", "stable_seconds": 45}


def test_endpoint_from_source_options_reads_secrets_from_named_environment_variables():
    ep = SftpEndpoint.from_source_options("mis-north", OPTIONS, {"MIS_HOST": "sftp.example.org", "MIS_KEY": "/k"})
    assert (ep.host, ep.port, ep.key_file, ep.remote_dir) == ("sftp.example.org", 2200, "/k", "/outgoing")
    assert ep.patterns == ("*_attendance_*.csv",) and ep.completeness == "done_marker"
    assert ep.stable_seconds == 45.0 and ep.archive_path() == "/outgoing/done"


def test_patterns_may_come_from_the_sources_file_entries():
    options = {k: v for k, v in OPTIONS.items() if k != "patterns"}
    options["files"] = [{"pattern": "sc_*.csv", "layout": "sc-persons"}]
    ep = SftpEndpoint.from_source_options("sc", options, {"MIS_HOST": "h", "MIS_KEY": "/k"})
    assert ep.patterns == ("sc_*.csv",)


def test_a_missing_environment_variable_is_named_without_any_value():
    with pytest.raises(ConfigError, match="'MIS_KEY'.*not set"):
        SftpEndpoint.from_source_options("mis-north", OPTIONS, {"MIS_HOST": "h"})


@pytest.mark.parametrize("change, message", [
    ({"completeness": "eventually"}, "completeness must be one of"),
    ({"after_success": "delete"}, "after_success must be one of"),
    ({"archive_dir": None}, "needs archive_dir"),
    ({"port": "twenty-two"}, "'port' is not a valid int"),
])
def test_bad_options_are_refused_clearly(change, message):
    options = {**OPTIONS, **change}
    if change.get("archive_dir", "x") is None:
        del options["archive_dir"]
    with pytest.raises(ConfigError, match=message):
        SftpEndpoint.from_source_options("mis-north", options, {"MIS_HOST": "h", "MIS_KEY": "/k"})


# --- connection failures, without a server --------------------------------------------------------------

@pytest.fixture
def offline_endpoint(tmp_path):
    key = Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption())
    (tmp_path / "id").write_bytes(key)
    (tmp_path / "known_hosts").write_text("")
    with socket.create_server(("127.0.0.1", 0)) as probe:  # a port nobody listens on once closed
        port = probe.getsockname()[1]
    return SftpEndpoint("mis-north", "127.0.0.1", port, "tether", str(tmp_path / "id"),
                        str(tmp_path / "known_hosts"), "/outgoing", CSV, connect_timeout=2.0,
                        max_retries=3, backoff_seconds=0.5)


def test_an_unreachable_server_is_retried_with_exponential_backoff_then_reported(offline_endpoint):
    sleeps: list[float] = []
    with pytest.raises(SftpSourceError) as failed:
        poll_endpoint(offline_endpoint, deliver=lambda name, data: True, sleep=sleeps.append)
    assert sleeps == [0.5, 1.0, 2.0]
    assert "'mis-north'" in str(failed.value) and f"127.0.0.1:{offline_endpoint.port}" in str(failed.value)
    assert "4 attempt(s)" in str(failed.value)


def test_a_missing_known_hosts_file_refuses_before_connecting(offline_endpoint, tmp_path):
    (tmp_path / "known_hosts").unlink()
    sleeps: list[float] = []
    with pytest.raises(HostKeyError, match="known_hosts file .* does not exist"):
        poll_endpoint(offline_endpoint, deliver=lambda name, data: True, sleep=sleeps.append)
    assert sleeps == []


def test_a_missing_key_file_is_reported_without_retrying(offline_endpoint, tmp_path):
    (tmp_path / "id").unlink()
    with pytest.raises(SftpSourceError, match="key file .* does not exist"):
        poll_endpoint(offline_endpoint, deliver=lambda name, data: True, sleep=pytest.fail)
