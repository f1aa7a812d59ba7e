"""What a customer is shown carries no internals, and says what happened in plain words.

A customer places three orders through the real API and worker (4242 → shipped, 0341 →
declined at confirm, one out of stock) with the live feed open on a real WebSocket; then
every customer view and response is walked: the orders list, each order, its timeline and
tracking, stats, payments history, notifications, the events list and the WebSocket events
as the customer received them. None may contain a task name, a PaymentIntent id, the
orders' correlation ids or the provider's raw decline text. Admins still see all of it.
"""

from __future__ import annotations

import json
import re

from models.order import Order
from tests.e2e.test_websocket import LiveSocket
from tests.factories import (
    CARD_DECLINED_AT_CONFIRM,
    admin_login,
    auth,
    create_product,
    place_order,
    register,
    saved_card,
    wait_status,
)
from tests.support.events import wait_until
from workflows.customer_text import GENERIC_DECLINE, decline_message

INTERNALS = [
    re.compile(r"task:"),
    re.compile(r"beat:"),
    re.compile(r"\b(?:orders|payments|events)\.[a-z_]+\b"),  # Celery task names
    re.compile(r"\bpi_[A-Za-z0-9]+"),  # PaymentIntent ids (and their client secrets)
    re.compile(r"\bre_[A-Za-z0-9]+"),  # refund ids
    re.compile(r"payment declined:"),  # our raw decline reason
    re.compile(r"card_declined|generic_decline"),  # Stripe's codes
    re.compile(r"correlationId"),
]


def _leaks(what: str, payload: object, correlation_ids: list[str]) -> list[str]:
    text = json.dumps(payload, default=str)
    found = [f"{what}: {p.pattern}" for p in INTERNALS if p.search(text)]
    found += [f"{what}: correlation id {c}" for c in correlation_ids if c in text]
    return found


def _notification_count(client, token: str) -> int:
    r = client.get("/api/notifications?limit=100", headers=auth(token))
    return len(r.json()["data"]["notifications"])


def test_customer_views_carry_no_internals_and_say_it_plainly(client, worker, live_api) -> None:
    admin = admin_login(client)
    create_product(client, admin["token"], "SKU-CV-OK", stock=10)
    create_product(client, admin["token"], "SKU-CV-ONE", stock=1)
    customer = register(client)
    token = customer["token"]
    good = saved_card(customer["user"]["id"])
    declining = saved_card(customer["user"]["id"], CARD_DECLINED_AT_CONFIRM)
    feed = LiveSocket(live_api, token)
    try:
        ids = {}
        for name, items, pm in (
            ("shipped", [("SKU-CV-OK", 1)], good),
            ("declined", [("SKU-CV-OK", 1)], declining),
            ("sold_out", [("SKU-CV-ONE", 2)], good),
        ):
            r = place_order(client, token, items, pm, {"X-Correlation-ID": f"cv-{name}-corr"})
            assert r.status_code == 202, r.text
            ids[name] = r.json()["data"]["order"]["id"]
            assert not _leaks("POST /api/orders", r.json(), [])
        done = {
            name: wait_status(client, token, oid, {"shipped", "failed"})
            for name, oid in ids.items()
        }
        assert done["shipped"]["status"] == "shipped"
        assert done["declined"]["status"] == "failed"
        assert done["sold_out"]["status"] == "failed"
        wait_until(lambda: "order.shipped" in feed.types(ids["shipped"]), timeout=20)
        wait_until(lambda: "order.failed" in feed.types(ids["declined"]), timeout=20)
        wait_until(lambda: _notification_count(client, token) >= 6, timeout=20)
    finally:
        feed.close()

    orders = {name: Order.get(oid) for name, oid in ids.items()}
    correlation_ids = [o.correlation_id for o in orders.values()]
    assert all(c.startswith("cv-") for c in correlation_ids)
    assert orders["declined"].payment_intent_id.startswith("pi_")
    assert orders["declined"].status_reason.startswith("payment declined:")

    h = auth(token)
    responses = {
        "my-orders": client.get("/api/orders/my-orders?limit=100", headers=h),
        "stats": client.get("/api/orders/stats", headers=h),
        "payments history": client.get("/api/payments/history/me", headers=h),
        "notifications": client.get("/api/notifications?limit=100", headers=h),
        "events": client.get("/api/events?limit=100", headers=h),
    }
    for name, oid in ids.items():
        for view in ("", "/timeline", "/tracking"):
            responses[f"{name}{view}"] = client.get(f"/api/orders/{oid}{view}", headers=h)
    leaks: list[str] = []
    for what, r in responses.items():
        assert r.status_code == 200, (what, r.text)
        leaks += _leaks(what, r.json(), correlation_ids)
    live = feed.events()
    assert {e["aggregateId"] for e in live} >= set(ids.values())
    leaks += _leaks("websocket events", live, correlation_ids)
    assert not leaks, leaks

    # Plain words: the decline, the sold-out line, and who did what.
    declined = responses["declined"].json()["data"]["order"]
    expected = decline_message(orders["declined"].status_reason.split(":")[1].split()[0])
    assert declined["statusReason"] == declined["statusMessage"] == expected
    assert expected == GENERIC_DECLINE
    assert "SKU-CV-ONE sold out" in responses["sold_out"].json()["data"]["order"]["statusReason"]
    assert {e["actor"] for e in declined["history"]} <= {"customer", "system"}
    bodies = [n["body"] for n in responses["notifications"].json()["data"]["notifications"]]
    assert any(GENERIC_DECLINE in b for b in bodies), bodies

    # Admins keep the internals, beside the customer's wording.
    a = auth(admin["token"])
    seen = client.get(f"/api/orders/{ids['declined']}", headers=a).json()["data"]["order"]
    assert seen["paymentIntentId"] == orders["declined"].payment_intent_id
    assert seen["correlationId"] == "cv-declined-corr"
    assert seen["statusReason"].startswith("payment declined:")
    assert seen["statusMessage"] == expected
    assert any((e["actor"] or "").startswith("task:") for e in seen["history"])
    rows = client.get("/api/orders?limit=100", headers=a).json()["data"]["orders"]
    mine = [row for row in rows if row["id"] in ids.values()]
    assert {row["customer"]["email"] for row in mine} == {customer["user"]["email"]}
    assert all(row["customer"]["name"] for row in mine)
