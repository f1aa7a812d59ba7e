"""``/ws`` with a real WebSocket client (websockets) against the API under uvicorn.

Live order updates reach their owner (and admins) and nobody else; a client that drops
and resumes with its last eventId ends with the full sequence, no gap, no duplicate.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect
from websockets.sync.client import connect

from models.event import events_collection, timeline_for
from models.product import Product
from tasks.dispatch import enqueue_outbox
from tests.factories import admin_login, create_product, place_order, register, saved_card
from tests.support.events import wait_until


class LiveSocket:
    """A real client connection; a thread collects every message the server sends."""

    def __init__(self, base_url: str, token: str, after: str | None = None) -> None:
        self.ws = connect(base_url.replace("http", "ws", 1) + "/ws", open_timeout=5)
        self.ws.send(json.dumps({"type": "auth", "token": token}))
        self.ready = json.loads(self.ws.recv(timeout=5))
        assert self.ready["type"] == "ready", self.ready
        if after:
            self.ws.send(json.dumps({"type": "resume", "after": after}))
        self.messages: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        try:
            for raw in self.ws:
                self.messages.append(json.loads(raw))
        except Exception:
            return  # a closed socket ends the collection

    def events(self, aggregate_id: str | None = None) -> list[dict[str, Any]]:
        found = [m["event"] for m in list(self.messages) if m["type"] == "event"]
        return [e for e in found if aggregate_id is None or e["aggregateId"] == aggregate_id]

    def types(self, aggregate_id: str) -> list[str]:
        return [e["type"] for e in self.events(aggregate_id)]

    def close(self) -> None:
        self.ws.close()
        self._thread.join(timeout=5)


def _ids(events: list[dict[str, Any]]) -> list[str]:
    return [e["eventId"] for e in events]


def _shop(client) -> tuple[dict, dict, str]:
    admin = admin_login(client)
    create_product(client, admin["token"], "SKU-WS", price=1200, stock=50)
    customer = register(client)
    return admin, customer, saved_card(customer["user"]["id"])


def test_owner_sees_order_live_other_user_sees_none_admin_sees_all(
    client, worker, live_api
) -> None:
    admin, owner, pm = _shop(client)
    other = register(client)
    sockets = {
        "owner": LiveSocket(live_api, owner["token"]),
        "other": LiveSocket(live_api, other["token"]),
        "admin": LiveSocket(live_api, admin["token"]),
    }
    try:
        time.sleep(0.5)  # past the resume window: the sockets are live
        r = place_order(client, owner["token"], [("SKU-WS", 1)], pm)
        order_id = r.json()["data"]["order"]["id"]
        wait_until(lambda: "order.shipped" in sockets["owner"].types(order_id), timeout=40)
        wait_until(lambda: "order.shipped" in sockets["admin"].types(order_id))
        time.sleep(0.5)
    finally:
        for socket in sockets.values():
            socket.close()
    stored = [e for e in timeline_for(order_id)]
    shipped_at = [e["type"] for e in stored].index("order.shipped")
    live = sockets["owner"].events(order_id)
    # Live, in store order, each once, from order.created to order.shipped.
    assert _ids(live)[: shipped_at + 1] == _ids(stored)[: shipped_at + 1]
    assert live[0]["type"] == "order.created"
    assert len(set(_ids(live))) == len(live)
    assert all(e["userId"] == owner["user"]["id"] for e in sockets["owner"].events())
    # The other customer sees nothing of the owner's (its own account events may still be
    # arriving: they are its own).
    assert [e for e in sockets["other"].events() if e["userId"] != other["user"]["id"]] == []
    assert sockets["other"].events(order_id) == []
    assert _ids(sockets["admin"].events(order_id))[: shipped_at + 1] == _ids(live)[: shipped_at + 1]


def test_disconnect_mid_run_then_resume_gives_full_sequence(client, worker, live_api) -> None:
    _, owner, pm = _shop(client)
    first = LiveSocket(live_api, owner["token"])
    time.sleep(0.5)
    # No card yet: the chain runs up to payment_pending and waits there, so the socket
    # can drop mid-run for certain (a whole chain is faster than a socket's round trip).
    order_id = place_order(client, owner["token"], [("SKU-WS", 2)]).json()["data"]["order"]["id"]
    wait_until(lambda: "order.payment_pending" in first.types(order_id), timeout=20)
    first.close()  # drops mid-run: the chain goes on without it once the card comes
    before = first.events(order_id)
    assert "order.shipped" not in [e["type"] for e in before]
    paid = client.post(
        "/api/payments/confirm",
        json={"orderId": order_id, "paymentMethodId": pm},
        headers={"Authorization": f"Bearer {owner['token']}"},
    )
    assert paid.status_code == 202, paid.text  # events flow while nobody listens

    second = LiveSocket(live_api, owner["token"], after=before[-1]["eventId"])
    try:
        wait_until(lambda: "order.shipped" in second.types(order_id), timeout=40)
        time.sleep(0.5)
    finally:
        second.close()
    combined = _ids(before) + _ids(second.events(order_id))
    stored = _ids(timeline_for(order_id))
    assert combined == stored[: len(combined)], "no gap, no duplicate, store order"
    assert len(combined) == len(set(combined))
    assert "order.shipped" in [e["type"] for e in timeline_for(order_id)][: len(combined)]


def test_resume_repeatedly_during_a_stream_of_events(client, worker, live_api) -> None:
    admin = admin_login(client)
    socket = LiveSocket(live_api, admin["token"])  # live before the first event exists
    Product.create(sku="WS-STREAM", name="Stream", price_cents=100, currency="usd", stock=1)
    enqueue_outbox("products", "WS-STREAM")
    total = 1 + 60

    def restock() -> None:
        for _ in range(60):
            Product.restock("WS-STREAM", 1)
            enqueue_outbox("products", "WS-STREAM")
            time.sleep(0.02)

    writer = threading.Thread(target=restock)
    seen: list[dict[str, Any]] = []
    started = time.monotonic()
    writer.start()
    try:
        while True:
            # Take a few events, drop the connection, come back after the last one seen.
            _wait_for_events(socket, min(5, total - len(seen)))
            socket.close()
            seen += socket.events("WS-STREAM")
            if len(seen) >= total:
                break
            socket = LiveSocket(live_api, admin["token"], after=seen[-1]["eventId"])
    finally:
        writer.join()
        socket.close()
    stored = [d["_id"] for d in events_collection().find({"aggregateId": "WS-STREAM"}).sort("seq")]
    assert _ids(seen) == stored
    print("stream took", time.monotonic() - started)


def _wait_for_events(socket: LiveSocket, count: int) -> None:
    try:
        wait_until(lambda: len(socket.events("WS-STREAM")) >= count)
    except AssertionError:
        print(
            "DEBUG",
            count,
            len(socket.events("WS-STREAM")),
            socket.messages[:5],
            socket._thread.is_alive(),
            events_collection().count_documents({"aggregateId": "WS-STREAM"}),
        )
        raise


# -- the protocol's edges, in-process (TestClient) -----------------------------------------------


def _app_with(**overrides: Any):
    from api.main import create_app
    from core.settings import get_settings

    return create_app(get_settings().model_copy(update=overrides))


@pytest.mark.parametrize(
    "first", [{"type": "auth", "token": "not-a-jwt"}, {"type": "hello"}, {"type": "auth"}]
)
def test_bad_auth_closes_4401(clean_data, first) -> None:
    with TestClient(_app_with()) as c, c.websocket_connect("/ws") as ws:
        ws.send_json(first)
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 4401


def test_no_auth_message_closes_4408(clean_data) -> None:
    app = _app_with(ws_auth_timeout=0.3)
    with (
        TestClient(app) as c,
        c.websocket_connect("/ws") as ws,
        pytest.raises(WebSocketDisconnect) as closed,
    ):
        ws.receive_json()
    assert closed.value.code == 4408


def _control(ws) -> dict[str, Any]:
    """The next non-event message (the user's own events may arrive in between)."""
    while True:
        message = ws.receive_json()
        if message["type"] != "event":
            return message


def test_pings_pongs_and_unknown_resume(clean_data) -> None:
    app = _app_with(ws_ping_interval=0.4, ws_resume_wait=0.05)
    with TestClient(app) as c:
        user = register(c)
        with c.websocket_connect("/ws") as ws:
            ws.send_json({"type": "auth", "token": user["token"]})
            assert ws.receive_json()["type"] == "ready"
            ws.send_json({"type": "resume", "after": "no-such-event"})
            assert _control(ws)["code"] == "UNKNOWN_EVENT"
            ws.send_json({"type": "ping"})
            assert _control(ws) == {"type": "pong"}
            assert _control(ws) == {"type": "ping"}
            # A revoked token ends the feed at the next ping.
            c.post("/api/users/logout", headers={"Authorization": f"Bearer {user['token']}"})
            with pytest.raises(WebSocketDisconnect) as closed:
                while True:
                    ws.receive_json()
    assert closed.value.code == 4401
