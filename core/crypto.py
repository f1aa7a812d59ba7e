"""AES-256-GCM field encryption for personal data at rest, with rotatable key ids.

Stored form: ``v1:{kid}:{base64(nonce + ciphertext)}``. The first key of
``settings.data_keys`` encrypts; every listed key decrypts, so a rotation is
"put the new key first, keep the old one until old records are rewritten".
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.settings import Settings, get_settings

VERSION = "v1"
NONCE_BYTES = 12
KEY_BYTES = 32
_KID = re.compile(r"^[A-Za-z0-9_.\-]{1,32}$")


class KeyConfigError(ValueError):
    """DATA_KEYS is malformed: names the offending entry."""


class DecryptionError(ValueError):
    """A stored value cannot be decrypted (unknown key id, tampered, or not ours)."""


class KeyRing:
    """Parsed data keys: the first encrypts, all decrypt."""

    def __init__(self, spec: str) -> None:
        self._keys: dict[str, AESGCM] = {}
        self.primary_kid = ""
        for position, entry in enumerate(e.strip() for e in spec.split(",")):
            if not entry:
                continue
            kid, sep, b64 = entry.partition(":")
            if not sep or not _KID.match(kid):
                raise KeyConfigError(f"DATA_KEYS entry {position + 1} must be keyid:base64key")
            try:
                raw = base64.b64decode(b64, validate=True)
            except binascii.Error as exc:
                raise KeyConfigError(f"DATA_KEYS key {kid!r} is not valid base64") from exc
            if len(raw) != KEY_BYTES:
                raise KeyConfigError(
                    f"DATA_KEYS key {kid!r} is {len(raw)} bytes; AES-256 needs {KEY_BYTES}"
                )
            if kid in self._keys:
                raise KeyConfigError(f"DATA_KEYS lists key id {kid!r} twice")
            self._keys[kid] = AESGCM(raw)
            self.primary_kid = self.primary_kid or kid
        if not self._keys:
            raise KeyConfigError("DATA_KEYS holds no key")

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        return cls(settings.data_keys)

    @property
    def kids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def encrypt(self, plaintext: bytes) -> str:
        kid = self.primary_kid
        header = f"{VERSION}:{kid}"
        nonce = os.urandom(NONCE_BYTES)
        # The header is authenticated too, so a value cannot be relabelled to another key.
        sealed = self._keys[kid].encrypt(nonce, plaintext, header.encode())
        return f"{header}:{base64.b64encode(nonce + sealed).decode()}"

    def decrypt(self, stored: str) -> bytes:
        version, kid, b64 = _split(stored)
        key = self._keys.get(kid)
        if key is None:
            raise DecryptionError(f"unknown data key id {kid!r}: add it to DATA_KEYS to read this")
        try:
            blob = base64.b64decode(b64, validate=True)
        except binascii.Error as exc:
            raise DecryptionError("encrypted value is not valid base64") from exc
        if len(blob) <= NONCE_BYTES:
            raise DecryptionError("encrypted value is truncated")
        try:
            return key.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], f"{version}:{kid}".encode())
        except InvalidTag as exc:
            raise DecryptionError(f"encrypted value failed authentication under {kid!r}") from exc


def _split(stored: str) -> tuple[str, str, str]:
    parts = stored.split(":", 2) if isinstance(stored, str) else []
    if len(parts) != 3 or parts[0] != VERSION:
        raise DecryptionError(f"not an encrypted value of format {VERSION}")
    return parts[0], parts[1], parts[2]


def key_id_of(stored: str) -> str:
    """The key id a stored value was encrypted under (for rotation reports)."""
    return _split(stored)[1]


@lru_cache
def default_keyring() -> KeyRing:
    return KeyRing.from_settings(get_settings())


def encrypt_str(value: str, keyring: KeyRing | None = None) -> str:
    return (keyring or default_keyring()).encrypt(value.encode("utf-8"))


def decrypt_str(stored: str, keyring: KeyRing | None = None) -> str:
    return (keyring or default_keyring()).decrypt(stored).decode("utf-8")


def encrypt_json(value: dict[str, Any], keyring: KeyRing | None = None) -> str:
    payload = json.dumps(value, separators=(",", ":"), sort_keys=True)
    return (keyring or default_keyring()).encrypt(payload.encode("utf-8"))


def decrypt_json(stored: str, keyring: KeyRing | None = None) -> dict[str, Any]:
    value = json.loads((keyring or default_keyring()).decrypt(stored))
    if not isinstance(value, dict):
        raise DecryptionError("encrypted JSON value is not an object")
    return value
