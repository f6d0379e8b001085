"""Fixtures for tests against the real local services started by infra/services.sh.

`make test` sources infra/services.env before pytest; without it these fixtures fail (never skip):
an integration suite that silently skips would report green without having tested anything.
"""
from __future__ import annotations

import dataclasses
import os
import posixpath
import stat
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import paramiko
import pytest

from connectors.sftp import SftpEndpoint

SFTP_VARS = ("TETHER_TEST_SFTP_HOST", "TETHER_TEST_SFTP_PORT", "TETHER_TEST_SFTP_USER",
             "TETHER_TEST_SFTP_KEY_FILE", "TETHER_TEST_SFTP_KNOWN_HOSTS", "TETHER_TEST_SFTP_CHROOT")
PG_VARS = ("TETHER_TEST_PG_ADMIN_URL",)


def require_env(*names: str) -> dict[str, str]:
    """The named variables from infra/services.env, or a failed test saying how to get them."""
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        pytest.fail(f"{', '.join(missing)} not set: run `make services` (infra/services.sh) first, then "
                    f"`source infra/services.env` (`make test` does both)", pytrace=False)
    return {n: os.environ[n] for n in names}


@pytest.fixture(scope="session")
def sftp_env() -> dict[str, str]:
    return require_env(*SFTP_VARS)


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    return require_env(*PG_VARS)["TETHER_TEST_PG_ADMIN_URL"]


@pytest.fixture(scope="session")
def sftp_host_key_line(sftp_env) -> str:
    """The pinned host key as `<type> <base64>` (without the host column)."""
    for line in Path(sftp_env["TETHER_TEST_SFTP_KNOWN_HOSTS"]).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            return " ".join(line.split()[1:3])
    pytest.fail(f"{sftp_env['TETHER_TEST_SFTP_KNOWN_HOSTS']} pins no host key: rerun infra/services.sh")


@pytest.fixture
def known_hosts_for(sftp_host_key_line, tmp_path) -> Callable[[int], str]:
    """known_hosts pinning the test server's real key for another port (e.g. a proxy in front of it)."""
    def make(port: int) -> str:
        path = tmp_path / f"known_hosts_{port}"
        path.write_text(f"[127.0.0.1]:{port} {sftp_host_key_line}\n")
        return str(path)
    return make


def _connect(env: dict[str, str]) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.load_host_keys(env["TETHER_TEST_SFTP_KNOWN_HOSTS"])
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(env["TETHER_TEST_SFTP_HOST"], port=int(env["TETHER_TEST_SFTP_PORT"]),
                   username=env["TETHER_TEST_SFTP_USER"], key_filename=env["TETHER_TEST_SFTP_KEY_FILE"],
                   allow_agent=False, look_for_keys=False, timeout=15)
    return client


def _remove_tree(sftp: paramiko.SFTPClient, path: str) -> None:
    try:
        entries = sftp.listdir_attr(path)
    except FileNotFoundError:
        return
    for attr in entries:
        child = posixpath.join(path, attr.filename)
        if stat.S_ISDIR(attr.st_mode or 0):
            _remove_tree(sftp, child)
        else:
            sftp.remove(child)
    sftp.rmdir(path)


@pytest.fixture
def sftp_client(sftp_env) -> Iterator[paramiko.SFTPClient]:
    """An SFTP session as the test user: what a school's MIS does when it drops a file."""
    client = _connect(sftp_env)
    try:
        yield client.open_sftp()
    finally:
        client.close()


@pytest.fixture
def sftp_endpoint(sftp_env, sftp_client, request) -> Iterator[Callable[..., SftpEndpoint]]:
    """Factory: an SftpEndpoint on a fresh remote folder `/inbox/<unique>` (archive: `/archive/<unique>`).

    Every call within one test shares that folder; keyword arguments override endpoint fields. The
    folder is created over SFTP (so the test user owns it) and removed afterwards.
    """
    folder = f"{request.node.name[:40].replace('[', '_').replace(']', '')}-{uuid.uuid4().hex[:8]}"
    inbox, archive = f"/inbox/{folder}", f"/archive/{folder}"
    sftp_client.mkdir(inbox)
    base = SftpEndpoint(
        source_id="test-sftp", host=sftp_env["TETHER_TEST_SFTP_HOST"], port=int(sftp_env["TETHER_TEST_SFTP_PORT"]),
        username=sftp_env["TETHER_TEST_SFTP_USER"], key_file=sftp_env["TETHER_TEST_SFTP_KEY_FILE"],
        known_hosts_file=sftp_env["TETHER_TEST_SFTP_KNOWN_HOSTS"], remote_dir=inbox, patterns=("*.csv",),
        completeness="stable", stable_seconds=30.0, after_success="leave", archive_dir=archive,
        connect_timeout=10.0, max_retries=0, backoff_seconds=0.05, io_timeout=20.0)

    def make(**overrides) -> SftpEndpoint:
        return dataclasses.replace(base, **overrides)

    yield make
    for path in (inbox, archive):
        try:
            _remove_tree(sftp_client, path)
        except OSError:
            pass


@pytest.fixture
def sftp_chroot(sftp_env) -> Path:
    """The server's chroot on local disk: remote `/inbox/x` is `sftp_chroot / "inbox/x"`."""
    return Path(sftp_env["TETHER_TEST_SFTP_CHROOT"])
