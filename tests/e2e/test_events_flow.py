"""Events end to end: an order's lifecycle in the store, handlers with retries and dead letters,
notifications, the stats projection and replay — real API, real worker, real Mongo and Redis.
"""

from __future__ import annotations

import time
from collections import Counter

from core.db import get_db
from models.event import timeline_for
from models.notification import Notification
from models.order_stats import OrderStats
from tasks.app import celery_app
from tasks.dispatch import enqueue_outbox
from tests.factories import (
    admin_login,
    auth,
    create_product,
    place_order,
    register,
    saved_card,
    wait_status,
)
from tests.support import event_handlers as flaky
from tests.support.events import wait_until
from workflows.events import EventType, make_event

LIFECYCLE = [
    "order.created",
    "order.reserved",
    "order.payment_pending",
    "order.payment.processed",
    "order.confirmed",
    "order.shipped",
]


def _outbox_empty(kind: str, key: object) -> bool:
    doc = get_db()[kind].find_one({"_id": key}, {"outbox": 1}) or {}
    return not doc.get("outbox")


def _ship_one_order(client, correlation_id: str) -> tuple[dict, str]:
    admin = admin_login(client)
    create_product(client, admin["token"], "SKU-EV", price=1500, stock=20)
    customer = register(client)
    pm = saved_card(customer["user"]["id"])
    r = place_order(
        client, customer["token"], [("SKU-EV", 2)], pm, {"X-Correlation-ID": correlation_id}
    )
    assert r.status_code == 202, r.text
    order_id = r.json()["data"]["order"]["id"]
    wait_status(client, customer["token"], order_id, {"shipped"})
    wait_until(lambda: "order.shipped" in [e["type"] for e in timeline_for(order_id)])
    return customer, order_id


def test_order_lifecycle_events_in_order_exactly_once_with_correlation_and_causation(
    client, worker
) -> None:
    customer, order_id = _ship_one_order(client, "ev-life-1")
    events = timeline_for(order_id)
    types = [e["type"] for e in events]
    assert [t for t in types if t in LIFECYCLE] == LIFECYCLE, types
    assert types.count("order.updated") == 4  # one per status move
    assert all(e["correlationId"] == "ev-life-1" for e in events)
    assert all(e["userId"] == customer["user"]["id"] for e in events)
    versions = [e["aggregateVersion"] for e in events]
    assert versions == sorted(versions)
    # Causation: each event is caused by the one before it — within one move, and across
    # moves (a move's first event by the previous move's last one); the first has none.
    assert events[0]["causationId"] is None
    for before, event in zip(events, events[1:], strict=False):
        assert event["causationId"] == before["eventId"], (event["type"], types)
    # The same events over HTTP, for the owner: filtered by correlation, oldest first.
    r = client.get("/api/events/correlation/ev-life-1", headers=auth(customer["token"]))
    assert r.status_code == 200, r.text
    listed = r.json()["data"]["events"]
    assert [e["eventId"] for e in listed] == [e["eventId"] for e in events]
    assert listed[1]["causationType"] in (None, *types)


def test_notifications_and_stats_projection_survive_replay(client, worker) -> None:
    customer, order_id = _ship_one_order(client, "ev-notify-1")
    user_id = customer["user"]["id"]
    wanted = {"order.created", "order.confirmed", "order.shipped"}

    def notified() -> Counter:
        return Counter(n.type for n in Notification.objects(user_id=user_id))

    wait_until(lambda: set(notified()) >= wanted)
    wait_until(lambda: OrderStats.for_user(user_id)["countsByStatus"] == {"shipped": 1})
    r = client.get("/api/notifications", headers=auth(customer["token"]))
    assert r.status_code == 200
    body = r.json()
    assert body["results"] == len(body["data"]["notifications"]) >= 3
    newest = body["data"]["notifications"][0]
    assert newest["type"] == "order.shipped" and newest["read"] is False
    assert newest["data"]["orderId"] == order_id

    admin = admin_login(client)
    r = client.post(
        "/api/events/replay",
        json={"correlationId": "ev-notify-1"},
        headers=auth(admin["token"]),
    )
    assert r.status_code == 202, r.text
    assert r.json()["data"]["handlerRuns"]["notifications"] == 3
    time.sleep(2.0)  # the replayed runs finish
    assert all(n == 1 for n in notified().values()), notified()
    stats = OrderStats.for_user(user_id)
    assert stats["orders"] == 1 and stats["countsByStatus"] == {"shipped": 1}
    assert stats["spentCents"] > 0


def test_low_stock_alerts_reach_every_admin(client, worker) -> None:
    admin = admin_login(client)
    create_product(client, admin["token"], "SKU-LOW", stock=6)  # threshold 5
    customer = register(client)
    pm = saved_card(customer["user"]["id"])
    r = place_order(client, customer["token"], [("SKU-LOW", 2)], pm)
    assert r.status_code == 202

    def alerted() -> bool:
        # The reservation's low-stock event waits in the product's outbox for beat's sweep.
        celery_app.send_task("events.sweep_outboxes")
        return bool(Notification.objects(user_id=admin["user"]["id"], type="inventory.low_stock"))

    wait_until(alerted, interval=0.5)
    r = client.get("/api/notifications", headers=auth(admin["token"]))
    alert = next(n for n in r.json()["data"]["notifications"] if n["type"].startswith("inventory"))
    assert "SKU-LOW" in alert["title"]
    r = client.post(f"/api/notifications/{alert['id']}/read", headers=auth(admin["token"]))
    assert r.status_code == 200 and r.json()["data"]["notification"]["read"] is True
    # Notifications are personal: the customer cannot touch the admin's.
    r = client.post(f"/api/notifications/{alert['id']}/read", headers=auth(customer["token"]))
    assert r.status_code == 404


def _health_check_event(sku: str) -> str:
    """Put a system.health_check event (handled by the test handler) into an outbox."""
    event = make_event(
        EventType.SYSTEM_HEALTH_CHECK,
        aggregate_id=sku,
        aggregate_version=0,
        correlation_id=f"flaky-{sku}",
    )
    get_db()["products"].update_one({"_id": sku}, {"$push": {"outbox": event}})
    return event["eventId"]


def test_handler_failing_twice_is_retried_with_backoff_then_succeeds(client, worker) -> None:
    admin = admin_login(client)
    create_product(client, admin["token"], "SKU-FLAKY-H", stock=3)
    event_id = _health_check_event("SKU-FLAKY-H")
    flaky.arm(event_id, 2)
    enqueue_outbox("products", "SKU-FLAKY-H")
    wait_until(lambda: flaky.successes(event_id) == 1, timeout=30)
    attempts = flaky.attempts(event_id)
    assert len(attempts) == 3
    gaps = [b - a for a, b in zip(attempts, attempts[1:], strict=False)]
    # Exponential with equal jitter (cap 2 s in tests): 0.5–1 s, then 1–2 s.
    assert gaps[0] >= 0.45 and gaps[1] >= 0.95, gaps
    r = client.get("/api/events/dead-letters", headers=auth(admin["token"]))
    assert r.json()["data"]["deadLetters"] == []
    r = client.get("/api/events/stats", headers=auth(admin["token"]))
    assert r.json()["data"]["stats"]["handlerFailures"][flaky.FLAKY] == 2


def test_handler_always_failing_is_dead_lettered_then_retried_after_fix(client, worker) -> None:
    admin = admin_login(client)
    create_product(client, admin["token"], "SKU-DEAD-H", stock=3)
    event_id = _health_check_event("SKU-DEAD-H")
    flaky.arm(event_id, flaky.ALWAYS)
    enqueue_outbox("products", "SKU-DEAD-H")

    def dead_letters() -> list[dict]:
        r = client.get("/api/events/dead-letters", headers=auth(admin["token"]))
        assert r.status_code == 200, r.text
        return r.json()["data"]["deadLetters"]

    dead = wait_until(dead_letters, timeout=30)
    assert len(dead) == 1
    assert dead[0]["handler"] == flaky.FLAKY and dead[0]["eventId"] == event_id
    assert dead[0]["attempts"] == 4 and "told to fail" in dead[0]["error"]
    assert dead[0]["resolved"] is False
    assert len(flaky.attempts(event_id)) == 4  # 1 + max_retries, then it stopped
    health = client.get("/api/events/health").json()["data"]
    assert health["checks"]["handlers"]["status"] == "degraded"

    flaky.fix(event_id)
    r = client.post(f"/api/events/dead-letters/{dead[0]['id']}/retry", headers=auth(admin["token"]))
    assert r.status_code == 202, r.text
    wait_until(lambda: flaky.successes(event_id) == 1)
    wait_until(lambda: dead_letters()[0]["resolved"])
    assert dead_letters()[0]["retries"] == 1
