"""What anonymous callers may learn from /health and /api/events/health; /live; cache; limit."""

from __future__ import annotations

import os
import signal
import time

from tests.factories import admin_login, auth, register


def test_anonymous_health_with_stripe_unreachable_shows_no_exception_text(
    client, stripe_server
) -> None:
    admin = admin_login(client)
    customer = register(client)
    os.kill(stripe_server["proc"].pid, signal.SIGSTOP)
    try:
        anonymous = client.get("/health")
        as_customer = client.get("/health", headers=auth(customer["token"]))
        forged = client.get("/health", headers=auth("not-a-token"))
        client.app.state.health_cache = None  # admins see a fresh run, not the cached one
        as_admin = client.get("/health", headers=auth(admin["token"]))
    finally:
        os.kill(stripe_server["proc"].pid, signal.SIGCONT)
    for r in (anonymous, as_customer, forged):
        assert r.status_code == 503
        body = r.json()
        assert body["checks"]["stripe"] == {"status": "fail"}, body
        assert "stripe" in body["failing"]
        for check in body["checks"].values():
            assert set(check) == {"status"}, body
        assert "127.0.0.1" not in r.text and "Error" not in r.text and "timed out" not in r.text
    detail = as_admin.json()["checks"]["stripe"]
    assert as_admin.status_code == 503 and detail["status"] == "fail"
    assert detail["error"] and detail["latencyMs"] >= 0


def test_anonymous_event_health_shows_status_only(client) -> None:
    admin = admin_login(client)
    anonymous = client.get("/api/events/health").json()["data"]
    assert {name: set(c) for name, c in anonymous["checks"].items()} == {
        "bus": {"status"},
        "store": {"status"},
        "handlers": {"status"},
    }
    detail = client.get("/api/events/health", headers=auth(admin["token"])).json()["data"]
    assert "registered" in detail["checks"]["handlers"]
    assert "outbox" in detail["checks"]["handlers"]


def test_health_is_cached_briefly(client, stripe_server) -> None:
    first = client.get("/health")
    assert first.json()["checks"]["stripe"]["status"] == "ok"
    os.kill(stripe_server["proc"].pid, signal.SIGSTOP)
    try:
        start = time.monotonic()
        cached = client.get("/health")  # within HEALTH_CACHE_SECONDS: no new Stripe call
        elapsed = time.monotonic() - start
    finally:
        os.kill(stripe_server["proc"].pid, signal.SIGCONT)
    assert cached.json()["checks"]["stripe"]["status"] == "ok"
    assert elapsed < 0.5, elapsed


def test_health_is_rate_limited_per_client(clean_data) -> None:
    from fastapi.testclient import TestClient

    from api.main import create_app
    from core.settings import get_settings

    settings = get_settings().model_copy(update={"rate_limit_health": "3/minute"})
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        codes = [c.get("/health").status_code for _ in range(4)]
        assert codes[:3] != [429] * 3 and 429 not in codes[:3]
        assert codes[3] == 429
        r = c.get("/health")
        assert r.json()["code"] == "RATE_LIMITED" and int(r.headers["Retry-After"]) >= 1
        # The cheap probes stay open for load balancers and orchestrators.
        assert c.get("/live").status_code == 200
        assert c.get("/ready").status_code == 200


def test_live_touches_no_dependency(client, mongo_server) -> None:
    from devstack import processes

    assert client.get("/live").json() == {"live": True}
    processes.stop(mongo_server["proc"])
    try:
        start = time.monotonic()
        r = client.get("/live")
        assert r.status_code == 200 and time.monotonic() - start < 0.5
        assert client.get("/ready").status_code == 503
    finally:
        mongo_server["proc"] = processes.start_mongo(
            mongo_server["port"], str(mongo_server["storage"]), None
        )
        processes.wait_port(mongo_server["port"], 20)
