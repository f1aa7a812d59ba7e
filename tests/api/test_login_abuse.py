"""Login and registration abuse, counted in real Redis: spraying, per-account lockout with
back-off across clients, and the per-client registration limit."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from core.settings import Settings

PASSWORD = "abuse-password-1"
DEFAULT = {name: field.default for name, field in Settings.model_fields.items()}


def _app(**overrides):
    from api.main import create_app
    from core.settings import get_settings

    return create_app(get_settings().model_copy(update=overrides))


def _from(app, ip: str) -> TestClient:
    """Another client address (the app's lifespan already ran in the main client)."""
    return TestClient(app, raise_server_exceptions=False, client=(ip, 40000))


def _register(client: TestClient, email: str) -> None:
    r = client.post(
        "/api/users/register",
        json={"email": email, "password": PASSWORD, "firstName": "A", "lastName": "B"},
    )
    assert r.status_code == 201, r.text


@pytest.fixture
def default_limits(clean_data: None) -> Iterator:
    """The shipped defaults of every login/registration limit (the test profile turns them off)."""
    app = _app(
        **{
            name: DEFAULT.get(name, "")
            for name in (
                "rate_limit_login",
                "rate_limit_login_client",
                "rate_limit_register",
                "login_lockout_threshold",
            )
        }
    )
    with TestClient(app, raise_server_exceptions=False, client=("10.0.0.1", 40000)) as c:
        yield app, c


def test_sixty_bad_logins_over_sixty_emails_from_one_client_meet_a_429(default_limits) -> None:
    app, sprayer = default_limits
    codes = []
    for i in range(60):
        r = sprayer.post(
            "/api/users/login",
            json={"email": f"target-{i}@example.com", "password": "Winter2026!"},
        )
        codes.append(r.status_code)
        if r.status_code == 429:
            assert r.json()["code"] == "RATE_LIMITED" and int(r.headers["Retry-After"]) >= 1
    assert 429 in codes, codes
    assert codes.index(429) <= 20, codes  # RATE_LIMIT_LOGIN_CLIENT, 20/minute by default
    assert set(codes) == {401, 429}
    # Another client is not in the sprayer's bucket.
    other = _from(app, "10.0.0.2")
    _register(other, "real-user@example.com")
    r = other.post(
        "/api/users/login", json={"email": "real-user@example.com", "password": PASSWORD}
    )
    assert r.status_code == 200, r.text


def test_account_lockout_spans_clients_backs_off_and_always_ends(clean_data) -> None:
    app = _app(
        login_lockout_threshold=3,
        login_lockout_base_seconds=1,
        login_lockout_max_seconds=4,
        rate_limit_login="",
        rate_limit_login_client="",
    )
    email = f"victim-{uuid.uuid4().hex[:6]}@example.com"
    with TestClient(app, raise_server_exceptions=False) as c:
        _register(c, email)
        bad = {"email": email, "password": "not-the-password"}
        good = {"email": email.upper(), "password": PASSWORD}
        # Three failures, each from another address: the count is the account's.
        for n in range(3):
            assert _from(app, f"10.1.0.{n}").post("/api/users/login", json=bad).status_code == 401
        r = _from(app, "10.1.0.9").post("/api/users/login", json=good)
        assert r.status_code == 429 and r.json()["code"] == "LOGIN_LOCKED", r.text
        assert r.headers["Retry-After"] == "1"
        time.sleep(1.3)
        # The lock ended; one more failure locks for twice as long.
        assert c.post("/api/users/login", json=bad).status_code == 401
        r = c.post("/api/users/login", json=good)
        assert r.status_code == 429 and r.headers["Retry-After"] == "2", r.text
        time.sleep(2.3)
        # Then the owner's correct password gets through and clears the count.
        assert c.post("/api/users/login", json=good).status_code == 200
        assert c.post("/api/users/login", json=bad).status_code == 401
        assert c.post("/api/users/login", json=good).status_code == 200
        # Unknown emails lock the same way, so a lock says nothing about existence.
        ghost = {"email": "nobody-here@example.com", "password": "x-guess-1"}
        for _ in range(3):
            assert c.post("/api/users/login", json=ghost).status_code == 401
        assert c.post("/api/users/login", json=ghost).json()["code"] == "LOGIN_LOCKED"


def test_registration_is_limited_per_client(default_limits) -> None:
    app, c = default_limits
    limit = int((DEFAULT.get("rate_limit_register") or "10/hour").split("/")[0])
    for i in range(limit):
        _register(c, f"bulk-{i}-{uuid.uuid4().hex[:4]}@example.com")
    r = c.post(
        "/api/users/register",
        json={
            "email": "one-more@example.com",
            "password": PASSWORD,
            "firstName": "A",
            "lastName": "B",
        },
    )
    assert r.status_code == 429 and r.json()["code"] == "RATE_LIMITED", r.text
    # Probing for taken emails spends the same budget: no faster than login.
    r = c.post(
        "/api/users/register",
        json={
            "email": "bulk-0@example.com",
            "password": PASSWORD,
            "firstName": "A",
            "lastName": "B",
        },
    )
    assert r.status_code == 429
    _register(_from(app, "10.0.0.3"), "elsewhere@example.com")
