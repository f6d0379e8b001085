"""SFTP source: pull complete files from a partner's SFTP folder, each into landing exactly once.

Schools, children's social care and the NHS trust drop their nightly and intraday extracts into an
SFTP folder. Tether connects with a key, trusts the server only if its host key is pinned in a
known_hosts file (an unknown or changed key is refused, never learnt), takes only files that have
finished arriving, and hands each one's bytes to the caller, who lands them (encrypted, checksummed,
recorded in the manifest; idempotent by checksum). Only then is the remote file archived, if
configured. A connection lost mid-way loses nothing: an undelivered file is simply taken on the
next poll, and the manifest makes a second delivery a no-op.

File contents are never logged or put in messages; file names are (they carry no identity).
"""
from __future__ import annotations

import fnmatch
import logging
import os
import posixpath
import socket
import stat
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping

import paramiko

from connectors.arrivals import DEFAULT_STALE_SECONDS, IN_FLIGHT_SUFFIXES, Unlanded, refusal, shown_name, sort_out
from schemas.config import ConfigError
from schemas.errors import TetherError

log = logging.getLogger(__name__)

COMPLETENESS_MODES = ("stable", "done_marker", "rename")
AFTER_SUCCESS_MODES = ("leave", "archive")
DONE_SUFFIX = ".done"

# Errors after which a new connection may succeed: network trouble and SSH transport failures.
_TRANSIENT = (OSError, EOFError, paramiko.SSHException)


class HostKeyError(TetherError, ConnectionError):
    """The server's host key is not the one pinned in known_hosts (unknown or changed): refused."""


class SftpSourceError(TetherError, ConnectionError):
    """The SFTP source could not be used (unreachable, refused our key, ...); names source and host:port."""


class _ShortRead(OSError):
    """Fewer bytes arrived than the server said the file holds."""


class _ChangedWhileReading(Exception):
    """The file grew or was rewritten while it was being downloaded: not complete after all."""


class _NoSuchFile(Exception):
    """The named remote file does not exist (not worth a reconnect)."""


@dataclass(frozen=True)
class SftpEndpoint:
    """One configured SFTP folder of one source, and how to tell when a file there is complete.

    completeness:
      - ``stable``: size and mtime unchanged for ``stable_seconds`` across polls (the default: works
        with any sender, costs one interval of latency);
      - ``done_marker``: the sender writes ``<name>.done`` after ``<name>``;
      - ``rename``: the sender uploads under a temporary name (``*.part``, ``*.tmp``, ``*.filepart``,
        a ``~`` suffix or a leading dot) and renames into place, so every other name is complete.
    In every mode a temporary name is never taken, and a name landing would refuse is not downloaded;
    both are reported by name (`PollResult.unlanded`), as is every file matching no pattern. A file
    in flight for ``in_flight_stale_seconds`` (24 h by default) is reported as stale.
    after_success: ``leave`` the file, or ``archive`` it (moved into ``archive_dir``; a relative
    ``archive_dir`` is taken inside ``remote_dir``).
    """

    source_id: str
    host: str
    port: int
    username: str
    key_file: str
    known_hosts_file: str
    remote_dir: str
    patterns: tuple[str, ...] = ("*",)
    completeness: str = "stable"
    stable_seconds: float = 30.0
    after_success: str = "leave"
    archive_dir: str | None = None
    connect_timeout: float = 15.0
    max_retries: int = 3
    backoff_seconds: float = 2.0
    io_timeout: float = 60.0
    in_flight_stale_seconds: float = DEFAULT_STALE_SECONDS
    key_passphrase: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        where = f"SFTP source {self.source_id!r}"
        if self.completeness not in COMPLETENESS_MODES:
            raise ConfigError(f"{where}: completeness must be one of {COMPLETENESS_MODES}, not {self.completeness!r}")
        if self.after_success not in AFTER_SUCCESS_MODES:
            raise ConfigError(f"{where}: after_success must be one of {AFTER_SUCCESS_MODES}, not {self.after_success!r}")
        if self.after_success == "archive" and not self.archive_dir:
            raise ConfigError(f"{where}: after_success = 'archive' needs archive_dir")
        if not self.patterns:
            raise ConfigError(f"{where}: needs at least one filename pattern")
        if self.stable_seconds < 0 or self.max_retries < 0 or self.backoff_seconds < 0:
            raise ConfigError(f"{where}: stable_seconds, max_retries and backoff_seconds must not be negative")
        if self.io_timeout <= 0 or self.in_flight_stale_seconds <= 0:
            raise ConfigError(f"{where}: io_timeout and in_flight_stale_seconds must be positive")

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def remote_path(self, name: str) -> str:
        return posixpath.join(self.remote_dir, name)

    def archive_path(self) -> str:
        assert self.archive_dir is not None
        return posixpath.join(self.remote_dir, self.archive_dir)  # absolute archive_dir wins in join

    @classmethod
    def from_source_options(cls, source_id: str, options: dict, env: Mapping[str, str]) -> "SftpEndpoint":
        """Build from a source's options in sources.toml.

        Any option may instead be given as ``<option>_env`` naming an environment variable, which is how
        secrets and machine-specific paths are supplied, e.g. ``key_file_env = "TETHER_SFTP_KEY_FILE"``.
        Filename globs come from ``patterns`` (a string or list) or from the source's ``files`` entries.
        """
        missing = object()

        def get(name: str, default: Any = missing, convert: Callable[[Any], Any] = str) -> Any:
            env_name = options.get(f"{name}_env")
            if env_name:
                if env_name not in env:
                    raise ConfigError(f"sources.toml: source {source_id!r}: {name}_env names environment "
                                      f"variable {env_name!r}, which is not set")
                raw = env[env_name]
            elif name in options:
                raw = options[name]
            elif default is missing:
                raise ConfigError(f"sources.toml: source {source_id!r} needs {name!r} (or {name}_env)")
            else:
                return default
            try:
                return convert(raw)
            except (TypeError, ValueError):
                raise ConfigError(f"sources.toml: source {source_id!r}: option {name!r} is not a valid "
                                  f"{getattr(convert, '__name__', 'value')}") from None

        patterns: Any = options.get("patterns")
        if patterns is None:
            patterns = [f["pattern"] for f in options.get("files", ()) if isinstance(f, dict) and "pattern" in f]
        elif isinstance(patterns, str):
            patterns = [patterns]
        archive_dir = get("archive_dir", None)
        return cls(
            source_id=source_id,
            host=get("host"), port=get("port", 22, int), username=get("username"),
            key_file=get("key_file"), known_hosts_file=get("known_hosts_file"),
            remote_dir=get("remote_dir", "."),
            patterns=tuple(patterns) or ("*",),
            completeness=get("completeness", "stable"),
            stable_seconds=get("stable_seconds", 30.0, float),
            after_success=get("after_success", "leave"),
            archive_dir=archive_dir,
            connect_timeout=get("connect_timeout", 15.0, float),
            max_retries=get("max_retries", 3, int),
            backoff_seconds=get("backoff_seconds", 2.0, float),
            io_timeout=get("io_timeout", 60.0, float),
            in_flight_stale_seconds=get("in_flight_stale_seconds", DEFAULT_STALE_SECONDS, float),
            key_passphrase=get("key_passphrase", None),
        )


@dataclass
class PollResult:
    """What one poll did: files newly landed, still arriving, already landed before, and per-file errors.

    `unlanded` accounts, by escaped name, for every other file in the folder: refused, matching no
    pattern, in flight (temporary names and the files in `skipped_incomplete`) or stale in flight.
    """

    taken: list[str] = field(default_factory=list)
    skipped_incomplete: list[str] = field(default_factory=list)
    already_landed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    unlanded: list[Unlanded] = field(default_factory=list)
    done_markers: int = 0
    files_seen: int = 0


# --- deciding which files are complete (pure) ----------------------------------------------------


@dataclass(frozen=True)
class RemoteEntry:
    """One directory entry as the server reports it."""

    name: str
    size: int
    mtime: int
    is_file: bool = True

    @classmethod
    def from_attributes(cls, attr: paramiko.SFTPAttributes) -> "RemoteEntry":
        mode = attr.st_mode or 0
        return cls(getattr(attr, "filename", ""), int(attr.st_size or 0), int(attr.st_mtime or 0), stat.S_ISREG(mode))


def matches_patterns(name: str, patterns: Iterable[str]) -> bool:
    """True when the file name matches one of the source's globs (case-sensitive, as on the server)."""
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def is_in_flight_name(name: str) -> bool:
    """A temporary upload name (or a hidden dot-file): never taken, in any completeness mode."""
    return name.startswith(".") or name.lower().endswith(IN_FLIGHT_SUFFIXES)


def select_complete(entries: Iterable[RemoteEntry], *, patterns: Iterable[str], completeness: str,
                    stable_seconds: float, state: dict, now: float,
                    state_key: Callable[[str], str] | None = None) -> tuple[list[RemoteEntry], list[str]]:
    """Split the listing into complete files (to take, oldest first) and names still arriving.

    Only regular files matching the patterns count; `.done` markers are never data, names landing
    would refuse are left out, and temporary names are always still arriving. In `stable` mode
    ``state["observed"]`` remembers each file's size and mtime and since when they have been seen
    unchanged; a file is complete once that is at least ``stable_seconds`` ago. Observations of files
    that have gone are forgotten, so the state stays as small as the folder. The state knows a file
    by ``state_key(name)`` (default: the name itself; the store keeps a keyed hash of it).
    """
    key = state_key or _same
    patterns = tuple(patterns)
    entries = [e for e in entries if e.is_file]
    names = {e.name for e in entries}
    candidates = [e for e in entries if matches_patterns(e.name, patterns) and not e.name.endswith(DONE_SUFFIX)
                  and refusal(e.name) is None]
    complete: list[RemoteEntry] = []
    incomplete: list[str] = []
    observed = state.setdefault("observed", {}) if completeness == "stable" else {}
    for entry in candidates:
        if is_in_flight_name(entry.name):
            done = False
        elif completeness == "rename":
            done = not is_in_flight_name(entry.name)
        elif completeness == "done_marker":
            done = entry.name + DONE_SUFFIX in names
        elif completeness == "stable":
            seen = observed.get(key(entry.name))
            if seen and seen["size"] == entry.size and seen["mtime"] == entry.mtime:
                done = now - seen["since"] >= stable_seconds
            else:
                observed[key(entry.name)] = {"size": entry.size, "mtime": entry.mtime, "since": now}
                done = stable_seconds <= 0
        else:
            raise ConfigError(f"unknown completeness mode {completeness!r}")
        (complete.append(entry) if done else incomplete.append(entry.name))
    for gone in set(observed) - {key(e.name) for e in candidates if not is_in_flight_name(e.name)}:
        del observed[gone]
    complete.sort(key=lambda e: (e.mtime, e.name))
    return complete, sorted(incomplete)


def _same(name: str) -> str:
    return name


def free_archive_name(name: str, taken: Callable[[str], bool]) -> str:
    """`name`, or `stem.1.ext`, `stem.2.ext`, ... — the first that `taken` says is free."""
    if not taken(name):
        return name
    stem, ext = posixpath.splitext(name)
    n = 1
    while taken(f"{stem}.{n}{ext}"):
        n += 1
    return f"{stem}.{n}{ext}"


# --- the connection -----------------------------------------------------------------------------


class _RefuseUnknownHost(paramiko.MissingHostKeyPolicy):
    """Never trust a host key that is not pinned: refuse with a message saying how to pin it."""

    def __init__(self, endpoint: SftpEndpoint):
        self.endpoint = endpoint

    def missing_host_key(self, client, hostname, key):
        ep = self.endpoint
        raise HostKeyError(
            f"SFTP source {ep.source_id!r}: host {hostname} is not in the known_hosts file "
            f"{ep.known_hosts_file} (it offered {key.get_name()} {_fingerprint(key)}). Refusing to connect: "
            f"host keys are never added automatically. Confirm that fingerprint with the server's "
            f"administrator, then add the key to {ep.known_hosts_file}.")


def _fingerprint(key: paramiko.PKey) -> str:
    return getattr(key, "fingerprint", None) or key.get_fingerprint().hex()


def _load_key(endpoint: SftpEndpoint) -> paramiko.PKey:
    where = f"SFTP source {endpoint.source_id!r} ({endpoint.address})"
    if not os.path.isfile(endpoint.key_file):
        raise SftpSourceError(f"{where}: key file {endpoint.key_file} does not exist")
    try:
        return paramiko.PKey.from_path(endpoint.key_file, password=endpoint.key_passphrase)
    except (paramiko.SSHException, OSError, ValueError) as exc:
        raise SftpSourceError(f"{where}: cannot read private key {endpoint.key_file} "
                              f"({type(exc).__name__}; wrong passphrase or not a private key?)") from None


@contextmanager
def _open_sftp(endpoint: SftpEndpoint) -> Iterator[paramiko.SFTPClient]:
    """An SFTP session on a host-key-verified, key-authenticated connection; closed on exit."""
    if not os.path.isfile(endpoint.known_hosts_file):
        raise HostKeyError(f"SFTP source {endpoint.source_id!r}: known_hosts file {endpoint.known_hosts_file} "
                           f"does not exist; pin the server's host key there before connecting.")
    pkey = _load_key(endpoint)
    client = paramiko.SSHClient()
    try:
        try:
            client.load_host_keys(endpoint.known_hosts_file)
        except (OSError, paramiko.SSHException, ValueError) as exc:
            raise HostKeyError(f"SFTP source {endpoint.source_id!r}: cannot read known_hosts file "
                               f"{endpoint.known_hosts_file} ({type(exc).__name__}: {exc})") from None
        client.set_missing_host_key_policy(_RefuseUnknownHost(endpoint))
        try:
            client.connect(endpoint.host, port=endpoint.port, username=endpoint.username, pkey=pkey,
                           timeout=endpoint.connect_timeout, banner_timeout=endpoint.connect_timeout,
                           auth_timeout=endpoint.connect_timeout, channel_timeout=endpoint.connect_timeout,
                           allow_agent=False, look_for_keys=False)
        except paramiko.BadHostKeyException as exc:
            raise HostKeyError(
                f"SFTP source {endpoint.source_id!r}: the host key of {endpoint.address} has CHANGED: it offered "
                f"{exc.key.get_name()} {_fingerprint(exc.key)} but {endpoint.known_hosts_file} pins "
                f"{exc.expected_key.get_name()} {_fingerprint(exc.expected_key)}. Refusing to connect (this "
                f"may be an impersonation). If the server's key was legitimately replaced, confirm the new "
                f"fingerprint with its administrator and update {endpoint.known_hosts_file}.") from None
        except paramiko.AuthenticationException:
            raise SftpSourceError(f"SFTP source {endpoint.source_id!r} ({endpoint.address}): the server refused "
                                  f"user {endpoint.username!r} with key {endpoint.key_file}") from None
        _send_at_once(client.get_transport())
        sftp = client.open_sftp()
        sftp.get_channel().settimeout(endpoint.io_timeout)
        yield sftp
    finally:
        client.close()


def _send_at_once(transport: paramiko.Transport | None) -> None:
    """Send each SFTP request at once: turn off Nagle's algorithm on the connection.

    SFTP is many small requests (open, read, stat, close, prefetch reads); with Nagle on, a small
    request can wait for the ACK of the previous packet, which the peer delays (40 ms on Linux).
    On loopback (benchmarks/connectors.py) that made a term of nightly files several times slower
    than OpenSSH's sftp, and a 30 MB file ten times slower.
    """
    sock = getattr(transport, "sock", None)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (AttributeError, OSError):
        pass  # not a TCP socket (a proxy command, a test double): nothing to tune


def _session_usable(sftp: paramiko.SFTPClient, probe: str) -> bool:
    """After an error: is the connection still good (so the error was about one file)?"""
    channel = sftp.get_channel()
    transport = channel.get_transport() if channel else None
    if not (transport and transport.is_active()) or channel.closed:
        return False
    try:
        sftp.stat(probe)
        return True
    except Exception:
        return False


def _with_retries(endpoint: SftpEndpoint, work: Callable[[paramiko.SFTPClient], Any],
                  sleep: Callable[[float], None]) -> Any:
    """Run `work` on a fresh session, reconnecting with exponential backoff on transient failures."""
    attempts = endpoint.max_retries + 1
    last: BaseException | None = None
    for attempt in range(attempts):
        try:
            with _open_sftp(endpoint) as sftp:
                return work(sftp)
        except (HostKeyError, SftpSourceError):
            raise
        except _TRANSIENT as exc:
            last = exc
            if attempt + 1 < attempts:
                delay = endpoint.backoff_seconds * 2 ** attempt
                log.warning("SFTP source %s (%s): %s: %s; retrying in %.1fs (attempt %d of %d)",
                            endpoint.source_id, endpoint.address, type(exc).__name__, exc, delay,
                            attempt + 1, attempts)
                sleep(delay)
    if isinstance(last, TimeoutError):
        raise SftpSourceError(
            f"SFTP source {endpoint.source_id!r} ({endpoint.address}): failed after {attempts} attempt(s): "
            f"the connection stalled (no data for {endpoint.io_timeout:g} s, the source's io_timeout); nothing "
            f"half-received was landed and the file is taken on the next poll; if the line is slow rather "
            f"than stalled, raise io_timeout in sources.toml") from last
    raise SftpSourceError(f"SFTP source {endpoint.source_id!r} ({endpoint.address}): failed after {attempts} "
                          f"attempt(s): {type(last).__name__}: {last}") from last


# --- moving bytes -------------------------------------------------------------------------------


_BLOCK = paramiko.SFTPFile.MAX_REQUEST_SIZE  # 32 KiB: what one SFTP read request asks for


def _read_to_end(fh: paramiko.SFTPFile, size: int) -> bytes:
    """Every byte of an open remote file, to end of file; `size` is what the server listed.

    A file bigger than one read request is prefetched (up to 64 requests in flight, as OpenSSH's
    sftp does); a smaller one is a single request, without starting a prefetch thread. Reading in
    whole request-sized blocks keeps paramiko's per-call buffer bookkeeping (8 KiB by default) off
    the path. The final empty read confirms the end: a file that grew shows as extra bytes.
    """
    if size > _BLOCK:
        fh.prefetch(size, max_concurrent_requests=64)
    parts: list[bytes] = []
    got = 0
    while True:
        piece = fh.read(min(_BLOCK, size - got) if got < size else _BLOCK)
        if not piece:
            return b"".join(parts)
        parts.append(piece)
        got += len(piece)


def _download(sftp: paramiko.SFTPClient, path: str, entry: RemoteEntry) -> bytes:
    """The file's bytes, checked against the size listed; raises if it changed while being read.

    A transfer that stalls (no data for `io_timeout`) raises TimeoutError with the session closed
    at once, so that closing the remote file does not wait out the timeout a second time.
    """
    with sftp.open(path, "rb") as fh:
        try:
            data = _read_to_end(fh, entry.size)
        except TimeoutError:
            sftp.get_channel().close()
            raise
    if len(data) < entry.size:
        raise _ShortRead(f"{entry.name}: received {len(data)} of {entry.size} bytes")
    after = RemoteEntry.from_attributes(sftp.stat(path))
    if len(data) != entry.size or (after.size, after.mtime) != (entry.size, entry.mtime):
        raise _ChangedWhileReading(entry.name)
    return data


def _makedirs(sftp: paramiko.SFTPClient, path: str) -> None:
    parts = [p for p in path.split("/") if p]
    current = "/" if path.startswith("/") else ""
    for part in parts:
        current = posixpath.join(current, part) if current else part
        try:
            sftp.stat(current)
        except FileNotFoundError:
            sftp.mkdir(current)


def _exists(sftp: paramiko.SFTPClient, path: str) -> bool:
    try:
        sftp.stat(path)
        return True
    except FileNotFoundError:
        return False


def _archive(sftp: paramiko.SFTPClient, endpoint: SftpEndpoint, name: str, *, with_marker: bool) -> str:
    """Move a landed file (and its `.done` marker) into the archive folder; returns the archived name."""
    folder = endpoint.archive_path()
    _makedirs(sftp, folder)
    target = free_archive_name(name, lambda n: _exists(sftp, posixpath.join(folder, n))
                               or (with_marker and _exists(sftp, posixpath.join(folder, n + DONE_SUFFIX))))
    sftp.posix_rename(endpoint.remote_path(name), posixpath.join(folder, target))
    if with_marker and _exists(sftp, endpoint.remote_path(name + DONE_SUFFIX)):
        sftp.posix_rename(endpoint.remote_path(name + DONE_SUFFIX), posixpath.join(folder, target + DONE_SUFFIX))
    return target


def poll_endpoint(endpoint: SftpEndpoint, *, deliver: Callable[[str, bytes], bool],
                  seen: Callable[[str, int, float], bool] | None = None, state: dict | None = None,
                  now: float | None = None, sleep: Callable[[float], None] = time.sleep,
                  state_key: Callable[[str], str] | None = None) -> PollResult:
    """One poll of the folder: take every complete, not-yet-landed file and hand it to `deliver`.

    `deliver(name, data)` lands the bytes and returns True if they were new, False if that content was
    already landed. `seen(name, size, mtime)` lets the caller skip, without downloading, a file its
    manifest already holds. `state` is a JSON-able dict the caller keeps between polls (in the store:
    `connectors.sftp_state`): it holds the stability observations and the files landed and still
    present, so that a left file is not downloaded again. `state_key(name)` is how the state knows a
    file (default: its name; the store keeps a keyed hash instead). A file is delivered only if every
    byte arrived; if the connection drops, it is retried (exponential backoff, up to `max_retries`) and
    otherwise taken on the next poll. Errors about single files (unreadable, failed delivery, failed
    archive) are collected, not raised.
    """
    state = {} if state is None else state
    key = state_key or _same
    now = time.time() if now is None else now
    result = PollResult()
    with_marker = endpoint.completeness == "done_marker"

    def settle(sftp: paramiko.SFTPClient, entry: RemoteEntry) -> None:
        landed[key(entry.name)] = [entry.size, entry.mtime]
        if endpoint.after_success == "archive":
            target = _archive(sftp, endpoint, entry.name, with_marker=with_marker)
            landed.pop(key(entry.name), None)
            log.info("SFTP source %s: archived %s as %s", endpoint.source_id, entry.name, target)

    def take(sftp: paramiko.SFTPClient, entry: RemoteEntry) -> None:
        if landed.get(key(entry.name)) == [entry.size, entry.mtime] or (seen and seen(entry.name, entry.size, entry.mtime)):
            result.already_landed.append(entry.name)
            settle(sftp, entry)
            return
        try:
            data = _download(sftp, endpoint.remote_path(entry.name), entry)
        except _ChangedWhileReading:
            state.get("observed", {}).pop(key(entry.name), None)
            result.skipped_incomplete.append(entry.name)
            return
        try:
            fresh = deliver(entry.name, data)
        except Exception as exc:  # the landing failed: keep the remote file, report, carry on
            result.errors.append(f"{shown_name(entry.name)}: delivery failed ({type(exc).__name__}: {exc})")
            return
        (result.taken if fresh else result.already_landed).append(entry.name)
        log.info("SFTP source %s: %s %s (%d bytes)", endpoint.source_id,
                 "landed" if fresh else "already landed", entry.name, entry.size)
        settle(sftp, entry)

    def session(sftp: paramiko.SFTPClient) -> None:
        entries = _listing(sftp, endpoint)
        complete, incomplete = select_complete(
            entries, patterns=endpoint.patterns, completeness=endpoint.completeness,
            stable_seconds=endpoint.stable_seconds, state=state, now=now, state_key=key)
        present = {key(e.name) for e in entries}
        for name in set(landed) - present:
            del landed[name]
        result.skipped_incomplete[:] = incomplete
        result.unlanded[:], result.done_markers, result.files_seen = account_for(
            entries, complete, endpoint, now)
        result.errors.clear()
        done = set(result.taken) | set(result.already_landed)
        for entry in complete:
            if entry.name in done:  # handled before a reconnect
                continue
            try:
                take(sftp, entry)
            except _TRANSIENT as exc:
                if isinstance(exc, TimeoutError) or not _session_usable(sftp, endpoint.remote_dir):
                    raise
                result.errors.append(f"{shown_name(entry.name)}: {type(exc).__name__}: {exc}")

    landed: dict[str, list] = state.setdefault("landed", {})
    _with_retries(endpoint, session, sleep)
    if result.taken or result.errors:
        log.info("SFTP source %s: %d taken, %d still arriving, %d already landed, %d error(s)",
                 endpoint.source_id, len(result.taken), len(result.skipped_incomplete),
                 len(result.already_landed), len(result.errors))
    return result


def account_for(entries: list[RemoteEntry], complete: list[RemoteEntry], endpoint: SftpEndpoint,
                now: float) -> tuple[list[Unlanded], int, int]:
    """Every regular file in the listing that will not be taken, by escaped name and reason;
    also the number of `.done` markers of files present, and of files seen."""
    files = [e for e in entries if e.is_file]
    names = {e.name for e in files}
    taking = {e.name for e in complete}
    waiting = {"stable": f"not yet unchanged for {endpoint.stable_seconds:g} s",
               "done_marker": "waiting for its .done marker",
               "rename": "not yet complete"}[endpoint.completeness]
    unlanded, markers = [], 0
    for e in sorted(files, key=lambda e: e.name):
        if e.name in taking:
            continue
        if e.name.endswith(DONE_SUFFIX) and not e.name.startswith("."):
            if e.name[: -len(DONE_SUFFIX)] in names:
                markers += 1
            else:
                unlanded.append(Unlanded(shown_name(e.name), "unmatched",
                                         "a .done marker whose file is not in the folder", e.size))
            continue
        found = sort_out(e.name, matches=matches_patterns(e.name, endpoint.patterns), complete=False,
                         age_seconds=max(0.0, now - e.mtime), stale_seconds=endpoint.in_flight_stale_seconds,
                         size=e.size, waiting_for=waiting)
        if found is not None:
            unlanded.append(found)
    return unlanded, markers, len(files)


def fetch_file(endpoint: SftpEndpoint, name: str, *, sleep: Callable[[float], None] = time.sleep) -> bytes:
    """Download one named file from the endpoint's folder (verified byte count), with retries."""
    def work(sftp: paramiko.SFTPClient) -> bytes:
        path = endpoint.remote_path(name)
        try:
            entry = RemoteEntry.from_attributes(sftp.stat(path))
        except FileNotFoundError:
            raise _NoSuchFile from None
        with sftp.open(path, "rb") as fh:
            data = _read_to_end(fh, entry.size)
        if len(data) != entry.size:
            raise _ShortRead(f"{name}: received {len(data)} of {entry.size} bytes")
        return data

    try:
        return _with_retries(endpoint, work, sleep)
    except _NoSuchFile:
        raise FileNotFoundError(f"SFTP source {endpoint.source_id!r}: no file {name!r} in "
                                f"{endpoint.remote_dir}") from None


def list_entries(endpoint: SftpEndpoint, *, sleep: Callable[[float], None] = time.sleep) -> list[RemoteEntry]:
    """The regular files in the remote folder that could be landed: matching the source's patterns,
    not a `.done` marker, not a temporary name, not a name landing refuses (no download).

    Cheap enough for a sensor tick: one connection, one directory listing. The files left out are
    reported by the landing asset's poll (`PollResult.unlanded`), not here.
    """
    def matching(sftp: paramiko.SFTPClient) -> list[RemoteEntry]:
        return [e for e in _listing(sftp, endpoint) if e.is_file and matches_patterns(e.name, endpoint.patterns)
                and not e.name.endswith(DONE_SUFFIX) and not is_in_flight_name(e.name)
                and refusal(e.name) is None]
    return _with_retries(endpoint, matching, sleep)


def _listing(sftp: paramiko.SFTPClient, endpoint: SftpEndpoint) -> list[RemoteEntry]:
    try:
        attrs = sftp.listdir_attr(endpoint.remote_dir)
    except (FileNotFoundError, PermissionError) as exc:
        raise SftpSourceError(f"SFTP source {endpoint.source_id!r} ({endpoint.address}): cannot list remote "
                              f"folder {endpoint.remote_dir} ({type(exc).__name__})") from None
    return [RemoteEntry.from_attributes(a) for a in attrs]
