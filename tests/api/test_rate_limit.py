"""Rate limits counted in real Redis: login per IP+email, default per user/IP, per-route."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import APIRouter, Depends
from fastapi.testclient import TestClient

from api.ratelimit import rate_limit, user_key
from tests.api.test_users import include_first

PASSWORD = "limit-password-1"


def _client(**limits: str) -> Iterator[TestClient]:
    from api.main import create_app
    from core.settings import get_settings

    app = create_app(get_settings().model_copy(update=limits))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def login_limited(clean_data: None) -> Iterator[TestClient]:
    yield from _client(rate_limit_login="5/minute")


def _register(client: TestClient, email: str) -> str:
    r = client.post(
        "/api/users/register",
        json={"email": email, "password": PASSWORD, "firstName": "R", "lastName": "L"},
    )
    assert r.status_code == 201, r.text
    return r.json()["data"]["token"]


def _assert_429(r) -> int:
    assert r.status_code == 429, r.text
    body = r.json()
    assert body["status"] == "fail" and body["code"] == "RATE_LIMITED"
    assert body["correlationId"] == r.headers["x-correlation-id"]
    retry_after = int(r.headers["retry-after"])
    assert 1 <= retry_after <= 60
    return retry_after


def test_sixth_bad_login_within_a_minute_is_429(login_limited: TestClient) -> None:
    c = login_limited
    _register(c, "victim@example.com")
    bad = {"email": "victim@example.com", "password": "guess-guess"}
    for _ in range(5):
        assert c.post("/api/users/login", json=bad).status_code == 401
    _assert_429(c.post("/api/users/login", json=bad))
    # The right password does not get through either: the bucket is IP+email.
    r = c.post("/api/users/login", json={"email": "Victim@Example.com", "password": PASSWORD})
    _assert_429(r)
    # Another email from the same address has its own bucket.
    other = {"email": "someone@example.com", "password": "guess-guess"}
    assert c.post("/api/users/login", json=other).status_code == 401


def test_an_empty_setting_switches_the_limit_off(client: TestClient) -> None:
    _register(client, "free@example.com")
    bad = {"email": "free@example.com", "password": "guess-guess"}
    statuses = {client.post("/api/users/login", json=bad).status_code for _ in range(8)}
    assert statuses == {401}


def test_default_limit_is_per_user_and_skips_operations(clean_data: None) -> None:
    for c in _client(rate_limit_default="4/minute"):
        # Two registrations from one IP: anonymous requests count per IP.
        alice = _register(c, "alice@example.com")
        bob = _register(c, "bob@example.com")
        for _ in range(4):
            r = c.get("/api/users/profile", headers={"Authorization": f"Bearer {alice}"})
            assert r.status_code == 200
        _assert_429(c.get("/api/users/profile", headers={"Authorization": f"Bearer {alice}"}))
        r = c.get("/api/users/profile", headers={"Authorization": f"Bearer {bob}"})
        assert r.status_code == 200
        # IP bucket: 2 registrations so far, then 2 more anonymous calls, then 429.
        assert c.get("/api/users/profile").status_code == 401
        assert c.get("/api/users/profile").status_code == 401
        _assert_429(c.get("/api/users/profile"))
        # Operations endpoints are never limited (load balancers poll them).
        assert {c.get("/ready").status_code for _ in range(6)} == {200}


def test_route_limit_per_user(clean_data: None) -> None:
    for c in _client(rate_limit_orders="2/minute"):
        probes = APIRouter()

        @probes.post(
            "/api/_order_probe", dependencies=[Depends(rate_limit("rate_limit_orders", user_key))]
        )
        def order_probe() -> dict:
            return {"ok": True}

        include_first(c.app, probes)
        carol = {"Authorization": f"Bearer {_register(c, 'carol@example.com')}"}
        dave = {"Authorization": f"Bearer {_register(c, 'dave@example.com')}"}
        assert c.post("/api/_order_probe", headers=carol).status_code == 200
        assert c.post("/api/_order_probe", headers=carol).status_code == 200
        _assert_429(c.post("/api/_order_probe", headers=carol))
        assert c.post("/api/_order_probe", headers=dave).status_code == 200


def test_counters_live_in_redis_under_the_oms_prefix(login_limited: TestClient) -> None:
    from core.redis_client import get_redis

    login_limited.post("/api/users/login", json={"email": "k@example.com", "password": "x" * 8})
    keys = list(get_redis().scan_iter("oms:rl:*"))
    assert keys, "no rate-limit key in Redis"
    assert all("k@example.com" not in key for key in keys)
