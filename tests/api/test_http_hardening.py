"""HTTP hardening: HSTS over https, no-store on API responses, a per-request deadline, and
WebSocket limits (message size, sockets per user, resume rate)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from tests.factories import auth, register


def _app(**overrides: Any):
    from api.main import create_app
    from core.settings import get_settings

    return create_app(get_settings().model_copy(update=overrides))


def test_hsts_only_over_https(clean_data) -> None:
    app = _app(trusted_proxies="10.0.0.1")
    with TestClient(app, base_url="https://testserver") as c:
        r = c.get("/api/products")
        assert r.headers["strict-transport-security"].startswith("max-age=31536000")
    with TestClient(app) as c:
        assert "strict-transport-security" not in c.get("/api/products").headers
    # Behind a trusted proxy that terminated TLS.
    with TestClient(app, client=("10.0.0.1", 1)) as c:
        r = c.get("/api/products", headers={"X-Forwarded-Proto": "https"})
        assert "strict-transport-security" in r.headers


def test_responses_with_tokens_or_personal_data_are_no_store(client: TestClient) -> None:
    r = client.post(
        "/api/users/register",
        json={
            "email": "nostore@example.com",
            "password": "no-store-pass-1",
            "firstName": "N",
            "lastName": "S",
        },
    )
    assert r.headers["cache-control"] == "no-store"
    token = r.json()["data"]["token"]
    login = client.post(
        "/api/users/login", json={"email": "nostore@example.com", "password": "no-store-pass-1"}
    )
    for response in (
        login,
        client.get("/api/users/profile", headers=auth(token)),
        client.get("/api/orders/my-orders", headers=auth(token)),
        client.get("/api/users/profile"),  # errors too
    ):
        assert response.headers.get("cache-control") == "no-store", response.request.url


def test_a_request_past_its_deadline_answers_504(clean_data) -> None:
    app = _app(request_timeout_seconds=0.5)
    slow = APIRouter()

    @slow.get("/api/_slow_sync")
    def slow_sync() -> dict:
        time.sleep(1.5)
        return {"late": True}

    @slow.get("/api/_slow_async")
    async def slow_async() -> dict:
        await asyncio.sleep(5)
        return {"late": True}

    app.include_router(slow)
    for _ in slow.routes:  # ahead of the dashboard's catch-all mount
        app.router.routes.insert(0, app.router.routes.pop())
    with TestClient(app, raise_server_exceptions=False) as c:
        for path in ("/api/_slow_async", "/api/_slow_sync"):
            start = time.monotonic()
            r = c.get(path)
            elapsed = time.monotonic() - start
            assert r.status_code == 504, r.text
            assert r.json()["code"] == "REQUEST_TIMEOUT"
            assert r.headers["x-correlation-id"] == r.json()["correlationId"]
            assert elapsed < 1.4, (path, elapsed)
        assert c.get("/api/products").status_code == 200


def test_websocket_message_size_limit(clean_data) -> None:
    app = _app(ws_max_message_bytes=512, ws_resume_wait=0.05)
    with TestClient(app) as c:
        user = register(c)
        with c.websocket_connect("/ws") as ws:
            ws.send_json({"type": "auth", "token": user["token"], "pad": "x" * 600})
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
        assert closed.value.code == 1009
        with c.websocket_connect("/ws") as ws:
            ws.send_json({"type": "auth", "token": user["token"]})
            assert ws.receive_json()["type"] == "ready"
            ws.send_json({"type": "ping", "pad": "y" * 600})
            with pytest.raises(WebSocketDisconnect) as closed:
                while True:
                    ws.receive_json()
        assert closed.value.code == 1009


def test_websocket_sockets_per_user_and_resume_rate(clean_data) -> None:
    app = _app(ws_max_sockets_per_user=2, ws_resume_per_minute=2, ws_resume_wait=0.05)
    with TestClient(app) as c:
        user = register(c)
        other = register(c)

        def ready(ws, token: str) -> None:
            ws.send_json({"type": "auth", "token": token})
            assert ws.receive_json()["type"] == "ready"

        with c.websocket_connect("/ws") as first, c.websocket_connect("/ws") as second:
            ready(first, user["token"])
            ready(second, user["token"])
            with c.websocket_connect("/ws") as third:
                third.send_json({"type": "auth", "token": user["token"]})
                with pytest.raises(WebSocketDisconnect) as closed:
                    third.receive_json()
            assert closed.value.code == 4429
            # Another user is not counted against this one.
            with c.websocket_connect("/ws") as theirs:
                ready(theirs, other["token"])
            codes = []
            for _ in range(3):
                first.send_json({"type": "resume", "after": "no-such-event"})
                codes.append(first.receive_json()["code"])
            assert codes == ["UNKNOWN_EVENT", "UNKNOWN_EVENT", "RATE_LIMITED"]
        # Closing frees the slots.
        with c.websocket_connect("/ws") as again:
            ready(again, user["token"])
