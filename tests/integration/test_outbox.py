"""The outbox against real Mongo (SecantusDB), real Redis and real Celery workers.

Each event leaves its aggregate's outbox once, is stored once and published once, even when
dispatches are duplicated, race with new writes, or the worker dies before dispatching.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter

from core.db import get_db
from core.redis_client import get_redis
from devstack import processes
from models.event import events_collection, timeline_for
from models.order import Order
from models.product import Product
from models.user import User
from tasks.app import celery_app
from tasks.dispatch import enqueue_outbox, workers_ping
from tests.conftest import ARTIFACTS, Worker
from tests.factories import customer_with_card, place_order, register
from tests.support.events import BusListener, wait_until


def _outbox(kind: str, key: object) -> list[dict]:
    return (get_db()[kind].find_one({"_id": key}, {"outbox": 1}) or {}).get("outbox") or []


def _stored(aggregate_id: str) -> list[dict]:
    return list(events_collection().find({"aggregateId": aggregate_id}).sort("seq", 1))


def test_dispatch_stores_publishes_and_pulls_each_event_once(worker) -> None:
    with BusListener() as bus:
        Product.create(sku="EV-ONCE", name="Once", price_cents=100, currency="usd", stock=3)
        for _ in range(3):  # duplicate dispatch requests change nothing
            enqueue_outbox("products", "EV-ONCE")
        wait_until(lambda: not _outbox("products", "EV-ONCE") and _stored("EV-ONCE"))
        wait_until(lambda: bus.of("EV-ONCE"))
        time.sleep(0.5)  # room for a wrong second publication to show up
    stored = _stored("EV-ONCE")
    assert [e["type"] for e in stored] == ["inventory.updated"]
    published = bus.of("EV-ONCE")
    assert [m["eventId"] for m in published] == [stored[0]["_id"]]
    message = published[0]
    assert message["data"] == {"sku": "EV-ONCE", "available": 3, "delta": 3}
    assert message["occurredAt"].endswith("Z") and isinstance(message["seq"], int)


def test_user_events_flow_from_the_users_outbox(client, worker) -> None:
    with BusListener() as bus:
        user = register(client)["user"]
        key = User.by_id(user["id"]).id
        wait_until(lambda: not _outbox("users", key) and bus.of(user["id"]))
    [stored] = _stored(user["id"])
    assert stored["type"] == "user.created" and stored["userId"] == user["id"]
    assert bus.ids(user["id"]) == [stored["_id"]]
    assert "password" not in str(stored["data"])


def test_events_pushed_while_dispatching_are_never_lost(worker) -> None:
    Product.create(sku="EV-RACE", name="Race", price_cents=100, currency="usd", stock=1)
    writers, per_writer = 4, 20

    def restock_many() -> None:
        for _ in range(per_writer):
            Product.restock("EV-RACE", 1)
            enqueue_outbox("products", "EV-RACE")

    with BusListener() as bus:
        enqueue_outbox("products", "EV-RACE")
        threads = [threading.Thread(target=restock_many) for _ in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        expected = 1 + writers * per_writer
        wait_until(
            lambda: len(_stored("EV-RACE")) == expected and not _outbox("products", "EV-RACE"),
            timeout=60,
        )
        wait_until(lambda: len(bus.of("EV-RACE")) >= expected, timeout=10)
        time.sleep(0.5)
    stored_ids = [e["_id"] for e in _stored("EV-RACE")]
    published = bus.ids("EV-RACE")
    assert len(set(stored_ids)) == expected
    assert Counter(published) == Counter(stored_ids), "each event published exactly once"
    # Store order is publication order (one dispatcher per aggregate at a time).
    assert published == stored_ids


class QueueWorker(Worker):
    """A private worker that consumes only the given queues (comma-separated)."""

    def __init__(self, log_name: str, queues: str) -> None:
        super().__init__(log_name, concurrency=1)
        self.queues = queues

    def start(self) -> QueueWorker:
        import socket

        self.name = f"test-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
        args = processes.celery_args("worker", concurrency=1, queues=self.queues)
        self.proc = processes.spawn(args + ["-n", self.name], log_path=self.log_path)
        processes.wait_worker_ready(lambda: workers_ping(0.5, [self.name]), timeout=40)
        return self


def _purge_queue(name: str) -> None:
    with celery_app.connection_for_write() as conn:
        conn.default_channel.queue_purge(name)


def test_worker_killed_before_dispatch_then_beat_sweep_dispatches_exactly_once(
    client, paused_worker
) -> None:
    customer, pm = customer_with_card(client, "SKU-SWEEP")
    with BusListener() as bus:
        order_id = place_order(client, customer["token"], [("SKU-SWEEP", 1)], pm).json()["data"][
            "order"
        ]["id"]
        # Another dispatcher "holds" the order, so the step cannot dispatch its own events
        # and queues a dispatch request instead; nobody takes the events queue.
        held = f"oms:outbox-lock:orders:{order_id}"
        get_redis().set(held, "another-dispatcher", ex=120)
        orders_only = QueueWorker("worker-orders-only", "orders").start()
        try:
            wait_until(lambda: Order.get(order_id).status == "reserved", timeout=30)
            time.sleep(0.5)  # the step's fallback request is sent right after the transition
            orders_only.kill()  # SIGKILL right after the transition
        finally:
            orders_only.stop()
        # The dispatch requests die with it (as if it was killed before sending them).
        _purge_queue("events")
        pending = [e["type"] for e in _outbox("orders", Order.get(order_id).id)]
        assert pending == ["order.created", "order.reserved", "order.updated"]
        assert _stored(order_id) == []
        get_redis().delete(held)  # the other dispatcher is gone

        beat = processes.spawn(
            processes.celery_args("beat") + ["-s", str(ARTIFACTS / f"beat-{uuid.uuid4().hex}")],
            env={"BEAT_OUTBOX_INTERVAL": "1"},
            log_path=ARTIFACTS / "beat-sweep.log",
        )
        events_only = QueueWorker("worker-events-only", "events").start()
        try:
            wait_until(
                lambda: (
                    len(_stored(order_id)) == 3 and not _outbox("orders", Order.get(order_id).id)
                ),
                timeout=40,
            )
            # A late dispatch request (a redelivered message) finds nothing left to do.
            enqueue_outbox("orders", order_id)
            time.sleep(2.5)  # two more sweep ticks
        finally:
            processes.stop(beat)
            events_only.stop()
    stored = _stored(order_id)
    assert [e["type"] for e in stored] == ["order.created", "order.reserved", "order.updated"]
    assert Counter(bus.ids(order_id)) == Counter(e["_id"] for e in stored)
    assert [e["eventId"] for e in timeline_for(order_id)] == [e["_id"] for e in stored]
    assert "events.sweep_outboxes" in events_only.log()


def test_steps_dispatch_their_own_events_without_an_events_consumer(client, paused_worker) -> None:
    customer, pm = customer_with_card(client, "SKU-INLINE")
    with BusListener() as bus:
        order_id = place_order(client, customer["token"], [("SKU-INLINE", 1)], pm).json()["data"][
            "order"
        ]["id"]
        # Nobody consumes the events queue: whatever is stored was dispatched by the steps.
        chain_only = QueueWorker("worker-chain-only", "orders,payments").start()
        try:
            wait_until(lambda: Order.get(order_id).status == "shipped", timeout=40)
            wait_until(lambda: not _outbox("orders", Order.get(order_id).id), timeout=10)
            wait_until(lambda: len(bus.ids(order_id)) >= len(_stored(order_id)), timeout=10)
        finally:
            chain_only.stop()
    stored = _stored(order_id)
    assert [e["type"] for e in stored][:2] == ["order.created", "order.reserved"]
    assert [e["type"] for e in stored][-2:] == ["order.shipped", "order.updated"]
    assert Counter(bus.ids(order_id)) == Counter(e["_id"] for e in stored)
    # The handlers ran in the steps too: the customer was told, the projection is current.
    from models.notification import Notification
    from models.order_stats import OrderStats

    titles = [n.title for n in Notification.objects(user_id=customer["user"]["id"])]
    assert any("shipped" in t for t in titles), titles
    assert OrderStats.for_user(customer["user"]["id"])["countsByStatus"] == {"shipped": 1}
