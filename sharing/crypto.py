"""Encryption at rest of identity fields, landing copies and quarantined payloads (AES-256-GCM).

Envelope: b"T1" | 12-byte key id (ascii) | 12-byte nonce | ciphertext+tag. The key id lets a
reader pick the right key after rotation and refuse a blob made with another key.
"""
from __future__ import annotations

import json
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sharing.keys import key_id

_MAGIC = b"T1"


class DecryptionError(ValueError):
    pass


def encrypt(key: bytes, plaintext: bytes, context: bytes = b"") -> bytes:
    nonce = os.urandom(12)
    kid = key_id(key).encode()
    return _MAGIC + kid + nonce + AESGCM(key).encrypt(nonce, plaintext, context + kid)


def decrypt(key: bytes, blob: bytes, context: bytes = b"") -> bytes:
    if not blob.startswith(_MAGIC):
        raise DecryptionError("not a Tether encrypted blob")
    kid, nonce, body = blob[2:14], blob[14:26], blob[26:]
    if kid.decode() != key_id(key):
        raise DecryptionError(f"encrypted with key {kid.decode()}, not the key supplied ({key_id(key)})")
    try:
        return AESGCM(key).decrypt(nonce, body, context + kid)
    except Exception as exc:  # InvalidTag carries no message
        raise DecryptionError("ciphertext failed authentication (tampered or wrong context)") from exc


def encrypt_json(key: bytes, obj: dict) -> bytes:
    return encrypt(key, json.dumps(obj, default=str, sort_keys=True).encode("utf-8"))


def decrypt_json(key: bytes, blob: bytes) -> dict:
    return json.loads(decrypt(key, blob).decode("utf-8"))
