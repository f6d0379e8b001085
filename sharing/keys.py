"""Keys for pseudonymisation and encryption, handed in by the caller.

Two keys, each 32 bytes: the token key (keyed HMAC tokens for linkage) and the identity key
(AES-GCM encryption of identity fields, landing copies and quarantined payloads). They come from
the environment — `TETHER_TOKEN_KEY` / `TETHER_IDENTITY_KEY` (hex) or the files named by
`TETHER_TOKEN_KEY_FILE` / `TETHER_IDENTITY_KEY_FILE` — never from the repository.
"""
from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from schemas.errors import TetherError
from sharing.private_files import create_private, private_dir


class KeyError_(TetherError, RuntimeError):
    """A key is missing or malformed; the message says which variable to set."""


def key_id(key: bytes) -> str:
    """A short public fingerprint of a key, stored beside what it protects (never the key)."""
    return hashlib.sha256(b"tether-key-id:" + key).hexdigest()[:12]


@dataclass(frozen=True)
class KeyRing:
    token_key: bytes
    identity_key: bytes

    @property
    def token_key_id(self) -> str:
        return key_id(self.token_key)

    @property
    def identity_key_id(self) -> str:
        return key_id(self.identity_key)

    def __repr__(self) -> str:  # never print key material
        return f"KeyRing(token={self.token_key_id}, identity={self.identity_key_id})"


def _one(env: Mapping[str, str], name: str) -> bytes:
    value = env.get(name)
    if not value and env.get(f"{name}_FILE"):
        path = Path(env[f"{name}_FILE"])
        if not path.is_file():
            raise KeyError_(f"{name}_FILE points at {path}, which does not exist")
        value = path.read_text().strip()
    if not value:
        raise KeyError_(f"set {name} (64 hex characters) or {name}_FILE (a file holding them); "
                        f"`tether keys init DIR` creates a pair")
    try:
        key = bytes.fromhex(value)
    except ValueError:
        raise KeyError_(f"{name} is not hex") from None
    if len(key) != 32:
        raise KeyError_(f"{name} must be 32 bytes (64 hex characters), got {len(key)} bytes")
    return key


def keys_from_env(env: Mapping[str, str] | None = None) -> KeyRing:
    env = os.environ if env is None else env
    return KeyRing(_one(env, "TETHER_TOKEN_KEY"), _one(env, "TETHER_IDENTITY_KEY"))


def key_origin(name: str, env: Mapping[str, str] | None = None) -> str:
    """Where a key came from, for messages: `TETHER_TOKEN_KEY_FILE=/path` or the variable's name."""
    env = os.environ if env is None else env
    if not env.get(name) and env.get(f"{name}_FILE"):
        return f"{name}_FILE={env[f'{name}_FILE']}"
    return f"{name} in the environment"


def write_new_keys(folder: Path) -> dict[str, str]:
    """Create a fresh key pair as files; returns the env variables naming them.

    The folder is created 0700 and each file 0600 from its first byte (`O_CREAT | O_EXCL` with the
    mode, so the key is never readable by others, even for a moment, and an existing key file is
    never overwritten).
    """
    private_dir(folder)
    out = {}
    for name in ("TETHER_TOKEN_KEY", "TETHER_IDENTITY_KEY"):
        path = folder / f"{name.lower()}.hex"
        try:
            fd = create_private(path, exclusive=True)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
                handle.flush()
                os.fsync(handle.fileno())
        out[f"{name}_FILE"] = str(path.resolve())
    return out
