"""Outgoing webhooks end to end: a real receiver on a loopback port, the real worker.

Beat is not running in the test session; where the receiver was down or failing, the test
calls beat's job (``webhooks.send_due``) itself, as beat would every few seconds.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from devstack import processes
from tasks.outgoing_webhooks import send_due
from tests.factories import admin_login, auth, customer_with_card, place_order, wait_status
from tests.support.events import wait_until
from tests.unit.test_outgoing_webhooks import documented_verify
from workflows.outgoing_webhooks import wants


class Receiver:
    """A shop's endpoint: records every request; answers 200, or 500 while ``failing``."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or processes.free_port()
        self.received: list[dict[str, Any]] = []
        self.failing = False
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.received.append(
                    {"headers": dict(self.headers.items()), "body": body, "at": time.time()}
                )
                self.send_response(500 if receiver.failing else 200)
                self.end_headers()
                self.wfile.write(b"nope" if receiver.failing else b"ok")

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def ok(self) -> list[dict[str, Any]]:
        return [r for r in self.received if not self.failing]

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.received]


def _subscribe(client, admin: str, url: str, types: list[str]) -> tuple[str, str]:
    r = client.post(
        "/api/webhook-subscriptions", json={"url": url, "eventTypes": types}, headers=auth(admin)
    )
    assert r.status_code == 201, r.text
    data = r.json()["data"]
    assert data["secret"].startswith("whsec_")
    return data["subscription"]["id"], data["secret"]


def _timeline(client, token: str, order_id: str) -> list[dict[str, Any]]:
    r = client.get(f"/api/orders/{order_id}/timeline", headers=auth(token))
    assert r.status_code == 200, r.text
    return r.json()["data"]["timeline"]


def _shipped_order(client, customer, card: str, sku: str) -> str:
    r = place_order(client, customer["token"], [(sku, 1)], card)
    assert r.status_code == 202, r.text
    order_id = r.json()["data"]["order"]["id"]
    wait_status(client, customer["token"], order_id, {"shipped"})
    return order_id


def test_every_event_once_per_subscription_in_order_and_signed(client, worker) -> None:
    admin = admin_login(client)
    receiver = Receiver().start()
    try:
        orders_sub, orders_secret = _subscribe(client, admin["token"], receiver.url, ["order.*"])
        all_sub, all_secret = _subscribe(client, admin["token"], receiver.url + "?all=1", ["*"])
        customer, card = customer_with_card(client, "WH-OK")
        order_id = _shipped_order(client, customer, card, "WH-OK")
        timeline = _timeline(client, customer["token"], order_id)
        want = {
            orders_sub: [e["eventId"] for e in timeline if wants(["order.*"], e["type"])],
            all_sub: [e["eventId"] for e in timeline],
        }
        secrets = {orders_sub: orders_secret, all_sub: all_secret}

        def got(sub: str) -> list[str]:
            return [
                r["headers"]["OMS-Event-Id"]
                for r in receiver.received
                if r["headers"]["OMS-Delivery-Id"]
                and json.loads(r["body"])["aggregateId"] == order_id
                and _sub_of(client, admin["token"], r["headers"]["OMS-Delivery-Id"]) == sub
            ]

        wait_until(lambda: all(got(s) == w for s, w in want.items()), timeout=30)
        verify = documented_verify()
        for r in receiver.received:
            sub = _sub_of(client, admin["token"], r["headers"]["OMS-Delivery-Id"])
            assert verify(secrets[sub], r["headers"]["OMS-Signature"], r["body"])
            assert not verify(secrets[sub], r["headers"]["OMS-Signature"], r["body"] + b"x")
        delivery_ids = [r["headers"]["OMS-Delivery-Id"] for r in receiver.received]
        assert len(delivery_ids) == len(set(delivery_ids)), "a delivery arrived twice"
        assert want[orders_sub], "the order produced no order.* events"
        assert len(want[all_sub]) >= len(want[orders_sub])
    finally:
        receiver.stop()


_SUBS_OF: dict[str, str] = {}


def _sub_of(client, admin: str, delivery_id: str) -> str:
    """Which subscription a delivery id belongs to, from the delivery logs (cached)."""
    if delivery_id not in _SUBS_OF:
        subs = client.get("/api/webhook-subscriptions?limit=100", headers=auth(admin))
        for sub in subs.json()["data"]["subscriptions"]:
            page = client.get(
                f"/api/webhook-subscriptions/{sub['id']}/deliveries?limit=100", headers=auth(admin)
            )
            for d in page.json()["data"]["deliveries"]:
                _SUBS_OF[d["id"]] = sub["id"]
    return _SUBS_OF[delivery_id]


def test_receiver_down_30s_then_back_gets_everything_once(client, worker) -> None:
    admin = admin_login(client)
    receiver = Receiver()  # not listening yet: connection refused
    sub, _ = _subscribe(client, admin["token"], receiver.url, ["order.*"])
    customer, card = customer_with_card(client, "WH-DOWN")
    order_id = _shipped_order(client, customer, card, "WH-DOWN")
    want = [
        e["eventId"]
        for e in _timeline(client, customer["token"], order_id)
        if wants(["order.*"], e["type"])
    ]
    down_until = time.monotonic() + 30
    while time.monotonic() < down_until:  # beat keeps trying while the receiver is down
        send_due()
        time.sleep(1)
    log = client.get(f"/api/webhook-subscriptions/{sub}/deliveries", headers=auth(admin["token"]))
    deliveries = log.json()["data"]["deliveries"]
    assert deliveries and all(d["status"] == "pending" for d in deliveries)
    assert max(d["attempts"] for d in deliveries) >= 2, "nothing was retried while down"
    errors = [a.get("error") or "" for d in deliveries for a in d["attemptLog"]]
    assert any("ConnectError" in e for e in errors), errors
    # Still subscribed: a run of failures must also last WEBHOOK_DISABLE_AFTER_SECONDS (35 s).
    state = client.get(f"/api/webhook-subscriptions/{sub}", headers=auth(admin["token"]))
    assert state.json()["data"]["subscription"]["active"] is True
    receiver.start()
    try:

        def arrived() -> list[str]:
            send_due()
            return [r["headers"]["OMS-Event-Id"] for r in receiver.received]

        wait_until(lambda: arrived() == want, timeout=40, interval=0.5)
        ids = [r["headers"]["OMS-Delivery-Id"] for r in receiver.received]
        assert len(ids) == len(set(ids)) == len(want)
    finally:
        receiver.stop()


def test_failing_receiver_disables_subscription_notifies_admin_then_redelivery(
    client, worker
) -> None:
    admin = admin_login(client)
    receiver = Receiver().start()
    receiver.failing = True
    try:
        sub, _ = _subscribe(client, admin["token"], receiver.url, ["order.created"])
        customer, card = customer_with_card(client, "WH-500")
        place_order(client, customer["token"], [("WH-500", 1)], card)

        def disabled() -> bool:
            send_due()
            r = client.get(f"/api/webhook-subscriptions/{sub}", headers=auth(admin["token"]))
            return not r.json()["data"]["subscription"]["active"]

        wait_until(disabled, timeout=60, interval=0.5)
        subscription = client.get(
            f"/api/webhook-subscriptions/{sub}", headers=auth(admin["token"])
        ).json()["data"]["subscription"]
        # Disabled by the first failure at least 35 s after the run began (the test profile).
        assert subscription["failureStreak"] >= 5
        assert subscription["disabledReason"] == "HTTP 500"
        tries = len(receiver.received)
        assert tries == subscription["failureStreak"]
        began = receiver.received[0]["at"]
        assert receiver.received[-1]["at"] - began >= 35
        notes = client.get("/api/notifications", headers=auth(admin["token"])).json()["data"]
        assert any(n["type"] == "webhook.subscription.disabled" for n in notes["notifications"]), (
            notes
        )
        send_due()
        time.sleep(1.5)
        assert len(receiver.received) == tries, "a disabled subscription was still sent to"

        log = client.get(
            f"/api/webhook-subscriptions/{sub}/deliveries", headers=auth(admin["token"])
        ).json()["data"]["deliveries"]
        assert len(log) == 1
        first = log[0]
        assert first["attempts"] == tries
        assert {a["statusCode"] for a in first["attemptLog"]} == {500}
        assert first["attemptLog"][0]["responseBody"] == "nope"

        refused = client.post(
            f"/api/webhook-subscriptions/{sub}/deliveries/{first['id']}/redeliver",
            headers=auth(admin["token"]),
        )
        assert refused.status_code == 409
        receiver.failing = False
        again = client.patch(
            f"/api/webhook-subscriptions/{sub}", json={"active": True}, headers=auth(admin["token"])
        )
        assert again.status_code == 200
        # Re-enabled: what waited goes at once (beat), and a manual redelivery goes too.
        wait_until(lambda: send_due() or len(receiver.received) > tries, timeout=15)
        redo = client.post(
            f"/api/webhook-subscriptions/{sub}/deliveries/{first['id']}/redeliver",
            headers=auth(admin["token"]),
        )
        assert redo.status_code == 202, redo.text
        new_id = redo.json()["data"]["delivery"]["id"]
        assert new_id != first["id"]
        wait_until(
            lambda: any(r["headers"]["OMS-Delivery-Id"] == new_id for r in receiver.received),
            timeout=15,
        )
        event_ids = {r["headers"]["OMS-Event-Id"] for r in receiver.received}
        assert event_ids == {first["eventId"]}
    finally:
        receiver.stop()


def test_bad_subscriptions_are_400(client) -> None:
    admin = admin_login(client)
    for body, field in (
        ({"url": "ftp://example.com/x", "eventTypes": ["order.*"]}, "url"),
        ({"url": "http://example.com/x", "eventTypes": ["order..x"]}, "eventTypes"),
        ({"url": "http://example.com/x", "eventTypes": []}, "eventTypes"),
        ({"url": "http://example.com/x", "eventTypes": ["*"], "secret": "mine"}, "secret"),
    ):
        r = client.post("/api/webhook-subscriptions", json=body, headers=auth(admin["token"]))
        assert r.status_code == 400, (body, r.text)
        assert field in json.dumps(r.json().get("errors")), r.json()
