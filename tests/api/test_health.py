"""/health and /ready against real services, up and down."""

from __future__ import annotations

import time

from devstack import processes


def test_health_all_ok_with_worker(client, worker) -> None:
    from tests.factories import admin_login

    admin = admin_login(client)
    r = client.get("/health", headers={"Authorization": f"Bearer {admin['token']}"})
    body = r.json()
    assert r.status_code == 200, body
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"mongo", "redis", "broker", "workers", "stripe"}
    for name, check in body["checks"].items():
        assert check["status"] == "ok", (name, check)
        assert check["latencyMs"] >= 0


def test_ready_ok(client) -> None:
    r = client.get("/ready")
    assert r.status_code == 200 and r.json() == {"ready": True}


def test_mongo_down_gives_503_naming_it_then_recovers(app, mongo_server) -> None:
    from fastapi.testclient import TestClient

    from core.db import get_db

    @app.get("/api/_count")
    def count() -> dict:
        return {"n": get_db()["anything"].count_documents({})}

    with TestClient(app, raise_server_exceptions=False) as c:
        assert c.get("/api/_count").status_code == 200
        processes.stop(mongo_server["proc"])
        try:
            start = time.monotonic()
            r = c.get("/health")
            elapsed = time.monotonic() - start
            assert r.status_code == 503
            assert "mongo" in r.json()["failing"]
            assert r.json()["checks"]["mongo"]["status"] == "fail"
            assert elapsed < 2.0, elapsed
            assert c.get("/ready").status_code == 503
            start = time.monotonic()
            r = c.get("/api/_count")
            assert time.monotonic() - start < 5.0
            assert r.status_code == 503
            assert r.json()["code"] == "SERVICE_UNAVAILABLE"
            assert "mongo" in r.json()["message"]
        finally:
            mongo_server["proc"] = processes.start_mongo(
                mongo_server["port"], str(mongo_server["storage"]), None
            )
        deadline = time.monotonic() + 15
        status = None
        while time.monotonic() < deadline:
            status = c.get("/api/_count").status_code
            if status == 200:
                break
            time.sleep(0.3)
        assert status == 200


def test_health_names_stripe_when_emulator_frozen(client, stripe_server) -> None:
    import os
    import signal

    os.kill(stripe_server["proc"].pid, signal.SIGSTOP)
    try:
        start = time.monotonic()
        r = client.get("/health")
        assert time.monotonic() - start < 2.0
    finally:
        os.kill(stripe_server["proc"].pid, signal.SIGCONT)
    assert r.status_code == 503
    assert r.json()["failing"] == ["stripe", "workers"] or "stripe" in r.json()["failing"]
    assert r.json()["checks"]["stripe"]["status"] == "fail"
