"""Users' private data: no hash in responses, phone encrypted at rest, clean logs."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.api.test_users import PASSWORD, PHONE, auth, login, raw_user, register


def test_no_response_contains_the_password_hash(client: TestClient) -> None:
    bodies: list[str] = []

    def keep(r: httpx.Response) -> None:
        bodies.append(r.text)

    data = register(client, "hash@example.com", phone=PHONE)
    token = data["token"]
    keep(client.post("/api/users/login", json={"email": "hash@example.com", "password": PASSWORD}))
    keep(
        client.post("/api/users/login", json={"email": "hash@example.com", "password": "nope!!!!"})
    )
    keep(client.get("/api/users/profile", headers=auth(token)))
    keep(client.patch("/api/users/profile", headers=auth(token), json={"lastName": "Byron"}))
    r = client.patch(
        "/api/users/profile",
        headers=auth(token),
        json={"password": "another-pass", "currentPassword": PASSWORD},
    )
    keep(r)
    token = r.json()["data"]["token"]
    keep(client.post("/api/users/register", json={"email": "hash@example.com"}))
    keep(client.post("/api/users/logout", headers=auth(token)))
    password_hash = raw_user("hash@example.com")["password_hash"]
    assert password_hash.startswith("$argon2id$")
    bodies.append(json.dumps(data))
    for body in bodies:
        assert "argon2" not in body and password_hash not in body
        assert "passwordHash" not in body and "password_hash" not in body


def test_phone_is_encrypted_at_rest_and_survives_key_rotation(client: TestClient) -> None:
    from api.main import create_app
    from core.settings import get_settings

    old_settings = get_settings()
    register(client, "old@example.com", phone=PHONE)
    doc = raw_user("old@example.com")
    assert doc["phone_enc"].startswith("v1:dev1:")
    assert "5551234567" not in json.dumps(doc, default=str)

    new_key = base64.b64encode(os.urandom(32)).decode()
    rotated = old_settings.model_copy(
        update={"data_keys": f"k2026:{new_key},{old_settings.data_keys}"}
    )
    with TestClient(create_app(rotated), raise_server_exceptions=False) as c2:
        register(c2, "new@example.com", phone="+4915112345678")
        new_doc = raw_user("new@example.com")
        assert new_doc["phone_enc"].startswith("v1:k2026:")
        assert "4915112345678" not in json.dumps(new_doc, default=str)
        old_token = login(c2, "old@example.com")
        new_token = login(c2, "new@example.com")
        r = c2.get("/api/users/profile", headers=auth(old_token))
        assert r.json()["data"]["user"]["phone"] == PHONE
        r = c2.get("/api/users/profile", headers=auth(new_token))
        assert r.json()["data"]["user"]["phone"] == "+4915112345678"
        # Rewriting an old record moves it to the new key.
        c2.patch("/api/users/profile", headers=auth(old_token), json={"phone": "+15550000000"})
        assert raw_user("old@example.com")["phone_enc"].startswith("v1:k2026:")


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """Real rendered log lines: the root handler's own formatter, written to a buffer."""
    from monitoring.logging import configure_logging

    configure_logging()
    root = logging.getLogger()
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(root.handlers[0].formatter)
    root.addHandler(handler)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)


def test_logs_carry_no_password_token_or_phone(client: TestClient, captured_logs) -> None:
    from monitoring.logging import get_logger

    data = register(client, "logs@example.com", phone=PHONE)
    token = login(client, "logs@example.com")
    client.post("/api/users/login", json={"email": "logs@example.com", "password": "wrong-pass"})
    client.patch(
        "/api/users/profile",
        headers=auth(token),
        json={"phone": "+442079460000", "password": "new-secret-9", "currentPassword": PASSWORD},
    )
    # What careless code might log: the processor must still scrub it.
    get_logger("tests.careless").info(
        "careless",
        password=PASSWORD,
        body={"currentPassword": PASSWORD, "phone": PHONE, "email": "logs@example.com"},
        note=f"sent Bearer {token} for {PHONE}",
        header=f"Authorization: Bearer {data['token']}",
    )
    text = captured_logs.getvalue()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    events = {line["event"] for line in lines}
    assert {"user_registered", "user_login", "login_failed", "user_updated", "careless"} <= events
    for secret in (PASSWORD, "new-secret-9", token, data["token"], PHONE, "442079460000"):
        assert secret not in text, secret
    assert "5551234567" not in text and "logs@example.com" not in text
    assert "$argon2" not in text
