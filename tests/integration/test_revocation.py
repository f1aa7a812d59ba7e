"""Revoked tokens stay revoked across a Redis restart (a private redis-server, no disk)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_lib
from fastapi.testclient import TestClient

from devstack import processes

PASSWORD = "revocation-pass-1"


class PrivateRedis:
    """A redis-server of our own on a fixed port: stop and start it to "restart Redis"."""

    def __init__(self, log_path: Path) -> None:
        self.port = processes.free_port()
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = processes.start_redis(self.port, self.log_path)

    def stop(self) -> None:
        processes.stop(self.proc)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(self) -> redis_lib.Redis:
        return redis_lib.Redis.from_url(self.url, decode_responses=True)


@pytest.fixture
def private_redis(artifacts_dir: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(artifacts_dir / "redis-revocation.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def private_client(clean_data: None, private_redis: PrivateRedis) -> Iterator[TestClient]:
    from api.main import create_app
    from core.settings import get_settings

    settings = get_settings().model_copy(update={"redis_url": private_redis.url})
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _register(c: TestClient, email: str) -> str:
    r = c.post(
        "/api/users/register",
        json={"email": email, "password": PASSWORD, "firstName": "R", "lastName": "S"},
    )
    assert r.status_code == 201, r.text
    return r.json()["data"]["token"]


def _login(c: TestClient, email: str, password: str = PASSWORD) -> str:
    r = c.post("/api/users/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    return r.json()["data"]["token"]


def _status(c: TestClient, token: str) -> tuple[int, str | None]:
    r = c.get("/api/users/profile", headers=_auth(token))
    return r.status_code, r.json().get("message")


def test_logout_then_redis_restart_keeps_the_token_refused(
    private_client: TestClient, private_redis: PrivateRedis
) -> None:
    from core.revocation import RevocationStore
    from core.security import decode_access_token

    c = private_client
    logged_out = _register(c, "restart@example.com")
    kept = _login(c, "restart@example.com")
    assert c.post("/api/users/logout", headers=_auth(logged_out)).status_code == 200
    assert _status(c, logged_out) == (401, "token revoked")
    assert _status(c, kept)[0] == 200

    # Password change on a second account: its older tokens are cut off by time.
    old_session = _register(c, "changer@example.com")
    r = c.patch(
        "/api/users/profile",
        headers=_auth(old_session),
        json={"password": "brand-new-pass", "currentPassword": PASSWORD},
    )
    assert r.status_code == 200, r.text
    fresh = r.json()["data"]["token"]

    # A third account deactivated.
    closed = _register(c, "closed@example.com")
    assert c.delete("/api/users/profile", headers=_auth(closed)).status_code == 200

    private_redis.restart()
    assert private_redis.client().dbsize() == 0, "the restarted Redis kept data"

    assert _status(c, logged_out) == (401, "token revoked")
    assert _status(c, old_session) == (401, "token revoked")
    assert _status(c, closed)[0] == 401
    assert _status(c, kept)[0] == 200
    assert _status(c, fresh)[0] == 200

    # The Mongo answer was written back to Redis: the next check is Redis-only.
    jti = decode_access_token(logged_out).jti
    assert private_redis.client().get(RevocationStore.jti_key(jti)) == "1"


def test_redis_down_fails_closed_with_503(
    private_client: TestClient, private_redis: PrivateRedis
) -> None:
    c = private_client
    token = _register(c, "down@example.com")
    private_redis.stop()
    r = c.get("/api/users/profile", headers=_auth(token))
    assert r.status_code == 503 and r.json()["code"] == "SERVICE_UNAVAILABLE"
    private_redis.start()
    assert _status(c, token)[0] == 200


def test_store_reads_mongo_on_a_redis_miss(clean_data: None, private_redis: PrivateRedis) -> None:
    from core.revocation import RevocationStore
    from core.security import now_ms
    from models.user import User

    user = User.register(
        email="store@example.com", password=PASSWORD, first_name="S", last_name="T"
    )
    user_id = str(user.id)
    store = RevocationStore(private_redis.client(), token_lifetime_seconds=3600)
    issued = now_ms()
    exp = issued // 1000 + 3600
    assert not store.is_revoked("jti-a", user_id, issued, exp)
    # The "checked, not revoked" cache must not hide a later revocation.
    store.revoke("jti-a", exp, user_id)
    assert store.is_revoked("jti-a", user_id, issued, exp)

    cut = store.revoke_all_before(user_id, issued + 10)
    assert cut == issued + 10
    # $max: an earlier cut-off never moves the line back.
    assert store.revoke_all_before(user_id, issued) == issued + 10
    assert store.is_revoked("jti-b", user_id, issued, exp)
    assert not store.is_revoked("jti-c", user_id, issued + 10, exp)

    private_redis.client().flushall()
    assert store.is_revoked("jti-a", user_id, issued, exp)
    assert store.is_revoked("jti-b", user_id, issued + 9, exp)
    assert not store.is_revoked("jti-d", user_id, issued + 10, exp)
    # TTL index drops revocations once the token would have expired anyway.
    from core.db import get_db

    indexes = get_db()["revoked_tokens"].index_information()
    assert any(i.get("expireAfterSeconds") == 0 for i in indexes.values())


def test_a_revocation_redis_lost_is_enforced_from_mongo(clean_data) -> None:
    """A failover to a replica that never got the revocation's SET still has the old cached
    "not revoked" answer: it may serve it for REVOCATION_CACHE_SECONDS, never longer."""
    import time

    from core.redis_client import get_redis
    from core.revocation import RevocationStore

    store = RevocationStore(get_redis(), token_lifetime_seconds=3600, cache_seconds=2)
    exp = int(time.time()) + 3600
    assert store.is_revoked("jti-lost", "user-lost", issued_ms=0, exp=exp) is False
    key = store.jti_key("jti-lost")
    cached_ttl = get_redis().pttl(key)
    assert 0 < cached_ttl <= 2000  # the "clean" answer is short-lived, not the token's hour
    store.revoke("jti-lost", exp, "user-lost")
    # The replica's view after the failover: the old cached answer, with what was left of it.
    get_redis().set(key, "0", px=cached_ttl)
    deadline = time.monotonic() + 10
    while not store.is_revoked("jti-lost", "user-lost", issued_ms=0, exp=exp):
        assert time.monotonic() < deadline, "the revocation in Mongo was never enforced"
        time.sleep(0.2)
    assert get_redis().get(key) == "1"  # re-warmed from Mongo
