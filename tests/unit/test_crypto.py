"""AES-256-GCM field encryption: format, tamper detection, key ids and rotation. Pure."""

from __future__ import annotations

import base64
import os

import pytest

from core.crypto import (
    DecryptionError,
    KeyConfigError,
    KeyRing,
    decrypt_json,
    decrypt_str,
    encrypt_json,
    encrypt_str,
    key_id_of,
)


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


OLD = f"old:{_key()}"
NEW = f"new:{_key()}"


def test_string_round_trip_and_stored_form() -> None:
    ring = KeyRing(OLD)
    stored = encrypt_str("+15551234567", ring)
    version, kid, blob = stored.split(":", 2)
    assert (version, kid) == ("v1", "old")
    assert len(base64.b64decode(blob)) == 12 + len("+15551234567") + 16  # nonce + ct + tag
    assert "5551234567" not in stored
    assert decrypt_str(stored, ring) == "+15551234567"
    # A fresh nonce each time: equal plaintexts do not give equal ciphertexts.
    assert encrypt_str("+15551234567", ring) != stored


def test_json_round_trip() -> None:
    ring = KeyRing(OLD)
    address = {"name": "Ada", "line1": "1 Analytical St", "city": "London", "country": "GB"}
    stored = encrypt_json(address, ring)
    assert "Analytical" not in stored
    assert decrypt_json(stored, ring) == address
    with pytest.raises(DecryptionError, match="not an object"):
        decrypt_json(encrypt_str("[1, 2]", ring), ring)


def test_rotation_old_reads_new_writes() -> None:
    before = KeyRing(OLD)
    old_value = encrypt_str("old secret", before)
    after = KeyRing(f"{NEW},{OLD}")
    assert after.primary_kid == "new" and after.kids == ("new", "old")
    new_value = encrypt_str("new secret", after)
    assert key_id_of(new_value) == "new" and key_id_of(old_value) == "old"
    assert decrypt_str(old_value, after) == "old secret"
    assert decrypt_str(new_value, after) == "new secret"
    with pytest.raises(DecryptionError, match="unknown data key id 'new'"):
        decrypt_str(new_value, before)


def test_tampering_is_detected() -> None:
    ring = KeyRing(f"{NEW},{OLD}")
    stored = encrypt_str("value", ring)
    version, kid, blob = stored.split(":", 2)
    raw = bytearray(base64.b64decode(blob))
    raw[-1] ^= 1
    flipped = f"{version}:{kid}:{base64.b64encode(bytes(raw)).decode()}"
    with pytest.raises(DecryptionError, match="failed authentication"):
        decrypt_str(flipped, ring)
    # Relabelling a value to another key id fails too (the header is authenticated).
    with pytest.raises(DecryptionError):
        decrypt_str(f"v1:old:{blob}", ring)
    for junk in ("plain text", "v2:new:AAAA", "v1:new:!!!", "v1:new:AAAA"):
        with pytest.raises(DecryptionError):
            decrypt_str(junk, ring)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "holds no key"),
        ("nokey", "keyid:base64key"),
        (f"k1:{base64.b64encode(b'short').decode()}", "is 5 bytes"),
        ("k1:not base64!", "not valid base64"),
        (f"k1:{_key()},k1:{_key()}", "twice"),
        (f"bad id:{_key()}", "keyid:base64key"),
    ],
)
def test_bad_key_configuration_is_refused_at_load(spec: str, message: str) -> None:
    with pytest.raises(KeyConfigError, match=message):
        KeyRing(spec)


def test_dev_default_keys_load() -> None:
    from core.settings import DEV_DATA_KEYS

    ring = KeyRing(DEV_DATA_KEYS)
    assert ring.primary_kid == "dev1"
    assert decrypt_str(encrypt_str("x", ring), ring) == "x"
