"""The SFTP source against the real OpenSSH server started by infra/services.sh.

The landing here is a fake keyed by sha256 (the real one is connectors/landing.py): it is
idempotent by checksum, as the real one is, so "landed once" means one entry and one True.
"""
from __future__ import annotations

import hashlib
import io
import socket
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from connectors.sftp import HostKeyError, SftpSourceError, fetch_file, poll_endpoint

pytestmark = pytest.mark.integration

T0 = 1_800_000_000.0  # the sensor's clock for stability observations (independent of the wall clock)


class FakeLanding:
    """Bytes by checksum; `deliver` says whether they were new, like the real landing."""

    def __init__(self):
        self.by_sha: dict[str, tuple[str, bytes]] = {}
        self.calls: list[str] = []

    def deliver(self, name: str, data: bytes) -> bool:
        self.calls.append(name)
        sha = hashlib.sha256(data).hexdigest()
        if sha in self.by_sha:
            return False
        self.by_sha[sha] = (name, data)
        return True

    def names(self) -> list[str]:
        return sorted(name for name, _ in self.by_sha.values())


def attendance_csv(day: int, rows: int = 5, month: int = 9) -> bytes:
    lines = ["Adno,UPN,Legal Surname,Legal Forename,DOB,Gender,Reg Group,Date,Session,Mark,Minutes Late"]
    lines += [f"{n},X,S{n},F{n},01/01/2015,F,5A,{day:02d}/{month:02d}/2026,AM,/," for n in range(rows)]
    return ("\r\n".join(lines) + "\r\n").encode("cp1252")


def put(sftp, path: str, data: bytes) -> None:
    sftp.putfo(io.BytesIO(data), path)


def test_a_term_of_files_is_pulled_and_each_delivered_once(sftp_endpoint, sftp_client):
    endpoint = sftp_endpoint(stable_seconds=30.0)
    files = {f"1234567_attendance_2026{m:02d}{d:02d}.csv": attendance_csv(d, rows=d, month=m)
             for m in (9, 10) for d in range(1, 31)}
    assert len(files) == 60
    for name, data in files.items():
        put(sftp_client, endpoint.remote_path(name), data)
    put(sftp_client, endpoint.remote_path("readme.txt"), b"not a feed file")
    landing, state = FakeLanding(), {}

    first = poll_endpoint(endpoint, deliver=landing.deliver, state=state, now=T0)
    assert first.taken == [] and len(first.skipped_incomplete) == 60  # first sight: not yet known stable

    second = poll_endpoint(endpoint, deliver=landing.deliver, state=state, now=T0 + 30)
    assert sorted(second.taken) == sorted(files) and second.errors == []
    assert {name: data for name, data in landing.by_sha.values()} == files

    third = poll_endpoint(endpoint, deliver=landing.deliver, state=state, now=T0 + 60)
    assert third.taken == [] and sorted(third.already_landed) == sorted(files)
    assert len(landing.calls) == 60  # left files known to the state are not downloaded again


def test_a_file_still_being_written_is_not_taken_until_complete(sftp_endpoint, sftp_client):
    endpoint = sftp_endpoint(stable_seconds=30.0)
    name, data = "1234567_attendance_20260907.csv", attendance_csv(7, rows=400)
    half = len(data) // 2
    landing, state = FakeLanding(), {}

    with sftp_client.open(endpoint.remote_path(name), "wb") as upload:
        upload.write(data[:half])
        upload.flush()
        assert sftp_client.stat(endpoint.remote_path(name)).st_size == half
        during = poll_endpoint(endpoint, deliver=landing.deliver, state=state, now=T0)
        assert during.skipped_incomplete == [name] and during.taken == []
        upload.write(data[half:])

    # The interval has passed, but the size changed since the last look: still not taken.
    changed = poll_endpoint(endpoint, deliver=landing.deliver, state=state, now=T0 + 31)
    assert changed.skipped_incomplete == [name] and landing.calls == []

    stable = poll_endpoint(endpoint, deliver=landing.deliver, state=state, now=T0 + 61)
    assert stable.taken == [name]
    assert landing.by_sha == {hashlib.sha256(data).hexdigest(): (name, data)}


def test_a_done_marker_releases_the_file_and_is_archived_with_it(sftp_endpoint, sftp_client):
    endpoint = sftp_endpoint(completeness="done_marker", after_success="archive")
    name = "sc_persons_20260907.csv"
    put(sftp_client, endpoint.remote_path(name), b"PersonID\r\n1\r\n")
    landing = FakeLanding()

    assert poll_endpoint(endpoint, deliver=landing.deliver).skipped_incomplete == [name]
    put(sftp_client, endpoint.remote_path(name + ".done"), b"")
    assert poll_endpoint(endpoint, deliver=landing.deliver).taken == [name]
    assert sftp_client.listdir(endpoint.remote_dir) == []
    assert sorted(sftp_client.listdir(endpoint.archive_dir)) == [name, name + ".done"]


def test_rename_mode_takes_only_names_renamed_into_place(sftp_endpoint, sftp_client):
    endpoint = sftp_endpoint(completeness="rename", patterns=("camhs_*",))
    final = "camhs_referrals_20260907.csv"
    put(sftp_client, endpoint.remote_path(final + ".part"), b"NHSNumber\n")
    landing = FakeLanding()

    assert poll_endpoint(endpoint, deliver=landing.deliver).skipped_incomplete == [final + ".part"]
    sftp_client.posix_rename(endpoint.remote_path(final + ".part"), endpoint.remote_path(final))
    assert poll_endpoint(endpoint, deliver=landing.deliver).taken == [final]


def test_the_same_file_delivered_twice_is_landed_once(sftp_endpoint, sftp_client):
    endpoint = sftp_endpoint(completeness="rename")
    name, data = "1234567_attendance_20260908.csv", attendance_csv(8)
    path = endpoint.remote_path(name)
    landing = FakeLanding()

    put(sftp_client, path, data)
    assert poll_endpoint(endpoint, deliver=landing.deliver).taken == [name]

    # Delivered again: same bytes, newer mtime, and no poll state remembered.
    put(sftp_client, path, data)
    sftp_client.utime(path, (T0, T0))
    again = poll_endpoint(endpoint, deliver=landing.deliver)
    assert again.taken == [] and again.already_landed == [name]

    # The same bytes under another name are still the same file.
    put(sftp_client, endpoint.remote_path("copy_" + name), data)
    copy = poll_endpoint(endpoint, deliver=landing.deliver)
    assert copy.taken == [] and sorted(copy.already_landed) == sorted([name, "copy_" + name])
    assert len(landing.by_sha) == 1

    # With the manifest's `seen`, known files are not even downloaded.
    calls_before = len(landing.calls)
    manifest = {(name, len(data)), ("copy_" + name, len(data))}
    skipped = poll_endpoint(endpoint, deliver=landing.deliver, seen=lambda n, size, mtime: (n, size) in manifest)
    assert sorted(skipped.already_landed) == sorted([name, "copy_" + name])
    assert len(landing.calls) == calls_before


def test_archive_after_success_moves_the_file_and_never_overwrites(sftp_endpoint, sftp_client):
    endpoint = sftp_endpoint(completeness="rename", after_success="archive")
    name = "sc_episodes_20260907.csv"
    sftp_client.mkdir(endpoint.archive_dir)
    put(sftp_client, f"{endpoint.archive_dir}/{name}", b"an earlier delivery\n")
    put(sftp_client, endpoint.remote_path(name), b"PersonID,EpisodeID\n1,2\n")

    result = poll_endpoint(endpoint, deliver=FakeLanding().deliver)

    assert result.taken == [name]
    assert sftp_client.listdir(endpoint.remote_dir) == []
    assert set(sftp_client.listdir(endpoint.archive_dir)) == {name, "sc_episodes_20260907.1.csv"}
    with sftp_client.open(f"{endpoint.archive_dir}/{name}") as fh:
        assert fh.read() == b"an earlier delivery\n"


class CuttingProxy:
    """A loopback TCP proxy in front of sshd that cuts its first `cuts` connections after
    `cut_after` bytes have gone from the server to the client, as when a line drops.

    With `stall`, those connections are not cut but go silent: the proxy stops forwarding from the
    server and holds the connection open (a stalled transfer), until the proxy is closed."""

    def __init__(self, target_port: int, cut_after: int, cuts: int = 1, stall: bool = False):
        self.target_port, self.cut_after, self.cuts, self.stall = target_port, cut_after, cuts, stall
        self.connections = 0
        self.cut = 0
        self._released = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._released.set()
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            cutting = self.connections <= self.cuts
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pump, args=(client, upstream, None), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, self.cut_after if cutting else None),
                             daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, limit: int | None) -> None:
        sent = 0
        try:
            while True:
                chunk = src.recv(65536)
                if not chunk:
                    break
                if limit is not None and sent + len(chunk) >= limit:
                    dst.sendall(chunk[: limit - sent])
                    self.cut += 1
                    if self.stall:
                        self._released.wait()
                    break
                dst.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass
        for sock in (src, dst):  # shutdown also wakes the other pump, blocked in recv on these sockets
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


@pytest.fixture
def big_file(sftp_endpoint, sftp_client):
    """A 3 MB extract already in place (renamed in), so a cut lands in the middle of its transfer."""
    def make(endpoint):
        name = "1234567_attendance_20260909.csv"
        data = attendance_csv(9, rows=50_000)
        assert len(data) > 2_000_000
        put(sftp_client, endpoint.remote_path(name), data)
        return name, data
    return make


# paramiko's prefetch thread dies with "Socket is closed" when the line drops; that is the point here.
CUT_LINE = pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")


@CUT_LINE
def test_a_connection_cut_mid_transfer_is_survived_and_the_file_landed_once(
        sftp_env, sftp_endpoint, sftp_client, known_hosts_for, big_file):
    proxy = CuttingProxy(int(sftp_env["TETHER_TEST_SFTP_PORT"]), cut_after=1_000_000)
    try:
        endpoint = sftp_endpoint(port=proxy.port, known_hosts_file=known_hosts_for(proxy.port),
                                 completeness="rename", after_success="archive", max_retries=0)
        name, data = big_file(endpoint)
        landing, state = FakeLanding(), {}

        with pytest.raises(SftpSourceError) as cut:
            poll_endpoint(endpoint, deliver=landing.deliver, state=state)
        assert proxy.cut == 1 and landing.calls == []
        assert "test-sftp" in str(cut.value) and f"127.0.0.1:{proxy.port}" in str(cut.value)
        assert sftp_client.listdir(endpoint.remote_dir) == [name]  # not archived: it was not landed

        result = poll_endpoint(endpoint, deliver=landing.deliver, state=state)
        assert result.taken == [name] and landing.calls == [name]
        assert landing.by_sha == {hashlib.sha256(data).hexdigest(): (name, data)}
        assert sftp_client.listdir(endpoint.archive_dir) == [name]
    finally:
        proxy.close()


@CUT_LINE
def test_a_cut_connection_is_retried_with_backoff_within_one_poll(
        sftp_env, sftp_endpoint, known_hosts_for, big_file):
    proxy = CuttingProxy(int(sftp_env["TETHER_TEST_SFTP_PORT"]), cut_after=1_000_000, cuts=2)
    try:
        endpoint = sftp_endpoint(port=proxy.port, known_hosts_file=known_hosts_for(proxy.port),
                                 completeness="rename", max_retries=3, backoff_seconds=0.05)
        name, data = big_file(endpoint)
        landing, sleeps = FakeLanding(), []

        result = poll_endpoint(endpoint, deliver=landing.deliver, sleep=sleeps.append)

        assert result.taken == [name] and landing.calls == [name]
        assert proxy.connections == 3 and sleeps == [0.05, 0.1]
        assert fetch_file(endpoint, name) == data
    finally:
        proxy.close()


@CUT_LINE
def test_a_stalled_transfer_fails_the_poll_within_io_timeout_and_the_file_is_taken_next_tick(
        sftp_env, sftp_endpoint, sftp_client, known_hosts_for, big_file):
    proxy = CuttingProxy(int(sftp_env["TETHER_TEST_SFTP_PORT"]), cut_after=1_000_000, stall=True)
    try:
        endpoint = sftp_endpoint(port=proxy.port, known_hosts_file=known_hosts_for(proxy.port),
                                 completeness="rename", after_success="archive", max_retries=0, io_timeout=2.0)
        name, data = big_file(endpoint)
        landing, state = FakeLanding(), {}
        outcome: dict = {}

        def first_tick():
            try:
                poll_endpoint(endpoint, deliver=landing.deliver, state=state)
            except SftpSourceError as exc:
                outcome["error"] = exc

        tick = threading.Thread(target=first_tick, daemon=True)
        tick.start()
        tick.join(timeout=120)       # a guard against hanging the suite, not a measure of time
        assert not tick.is_alive(), "the stalled poll never gave up"
        assert proxy.cut == 1 and landing.calls == []
        message = str(outcome["error"])
        assert "test-sftp" in message and f"127.0.0.1:{proxy.port}" in message
        assert "no data for 2 s" in message and "io_timeout" in message
        assert sftp_client.listdir(endpoint.remote_dir) == [name]       # not archived: not landed

        result = poll_endpoint(endpoint, deliver=landing.deliver, state=state)     # the next tick
        assert result.taken == [name] and landing.calls == [name]
        assert landing.by_sha == {hashlib.sha256(data).hexdigest(): (name, data)}
    finally:
        proxy.close()


def test_every_file_in_the_sftp_folder_is_taken_or_reported_by_escaped_name(sftp_endpoint, sftp_client):
    endpoint = sftp_endpoint(completeness="stable", stable_seconds=30.0, patterns=("*_attendance_*.csv",),
                             in_flight_stale_seconds=3600.0)
    files = {
        "1234567_attendance_20261102.csv": attendance_csv(2, month=11),        # taken
        "notes.txt": b"no pattern",                                           # unmatched
        ".1234567_attendance_20261103.csv": attendance_csv(3, month=11),       # hidden
        "..%2f..%2fetc_attendance_20261102.csv": b"a path trick",             # refused
        "1234567_attendance_20261104.csv.part": b"uploading",                 # in flight
        "1234567_attendance_20261001.csv.filepart": b"abandoned",             # stale in flight
        "1234567_attendance\x1b]0;pwned\x07_20261105.csv": b"escape codes",   # refused
    }
    for name, data in files.items():     # on the poll's clock: sent a minute ago, the abandoned one 2 h ago
        put(sftp_client, endpoint.remote_path(name), data)
        age = 7200 if name.endswith(".filepart") else 60
        sftp_client.utime(endpoint.remote_path(name), (T0 - age, T0 - age))
    landing, state = FakeLanding(), {}

    first = poll_endpoint(endpoint, deliver=landing.deliver, state=state, now=T0)
    second = poll_endpoint(endpoint, deliver=landing.deliver, state=state, now=T0 + 30)

    assert first.taken == [] and second.taken == ["1234567_attendance_20261102.csv"]
    assert landing.calls == ["1234567_attendance_20261102.csv"]     # nothing else even downloaded
    assert second.files_seen == len(files)
    assert {u.name: u.state for u in first.unlanded}["'1234567_attendance_20261102.csv'"] == "in_flight"
    states = {u.name: u.state for u in second.unlanded}
    assert states == {
        "'notes.txt'": "unmatched",
        "'.1234567_attendance_20261103.csv'": "in_flight",
        "'..%2f..%2fetc_attendance_20261102.csv'": "refused",
        "'1234567_attendance_20261104.csv.part'": "in_flight",
        "'1234567_attendance_20261001.csv.filepart'": "stale_in_flight",
        "'1234567_attendance\\x1b]0;pwned\\x07_20261105.csv'": "refused",
    }
    assert len(second.taken) + len(second.unlanded) == second.files_seen
    assert second.errors == []


def _other_ed25519_key() -> str:
    public = Ed25519PrivateKey.generate().public_key()
    return public.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()


def test_a_changed_host_key_is_refused(sftp_env, sftp_endpoint, sftp_client, tmp_path):
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{sftp_env['TETHER_TEST_SFTP_PORT']} {_other_ed25519_key()}\n")
    pinned = known_hosts.read_text()
    endpoint = sftp_endpoint(known_hosts_file=str(known_hosts), completeness="rename", max_retries=3)
    put(sftp_client, endpoint.remote_path("a.csv"), b"x\n")
    landing, sleeps = FakeLanding(), []

    with pytest.raises(HostKeyError) as refused:
        poll_endpoint(endpoint, deliver=landing.deliver, sleep=sleeps.append)

    message = str(refused.value)
    assert "CHANGED" in message and str(known_hosts) in message and "test-sftp" in message
    assert landing.calls == [] and sleeps == []  # refused outright, not retried
    assert known_hosts.read_text() == pinned     # and nothing learnt


def test_an_unknown_host_is_refused_and_never_added(sftp_endpoint, sftp_client, tmp_path):
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    endpoint = sftp_endpoint(known_hosts_file=str(known_hosts), completeness="rename")
    put(sftp_client, endpoint.remote_path("a.csv"), b"x\n")

    with pytest.raises(HostKeyError) as refused:
        poll_endpoint(endpoint, deliver=FakeLanding().deliver)

    assert "not in the known_hosts file" in str(refused.value) and str(known_hosts) in str(refused.value)
    assert known_hosts.read_text() == ""


def test_files_dropped_on_the_server_disk_are_seen(sftp_endpoint, sftp_chroot: Path):
    endpoint = sftp_endpoint(completeness="rename")
    dropped = sftp_chroot / endpoint.remote_dir.lstrip("/") / "local.csv"
    dropped.write_bytes(b"a\n")
    dropped.chmod(0o644)        # readable by the SFTP user whatever this process's umask (077 once Tether loads)
    assert poll_endpoint(endpoint, deliver=FakeLanding().deliver).taken == ["local.csv"]
