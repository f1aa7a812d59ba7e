"""PAYMENT_CAPTURE=manual: authorize at order (confirmed), capture at ship, void on cancel.

The session worker is paused; private workers started with ``PAYMENT_CAPTURE=manual`` run
the steps (a worker reads its settings at start, like a deployment would).
"""

from __future__ import annotations

import socket
import time
import uuid

from devstack import processes
from models.product import Product
from tests.conftest import Worker
from tests.factories import (
    admin_login,
    auth,
    browser_card,
    create_product,
    intent_id_of,
    place_order,
    register,
    stripe_client,
    wait_status,
)
from tests.support.events import wait_until

ALL_QUEUES = "orders,payments,events,maintenance"


class ManualCaptureWorker(Worker):
    """A worker with PAYMENT_CAPTURE=manual consuming ``queues``."""

    def __init__(self, log_name: str, queues: str = ALL_QUEUES) -> None:
        super().__init__(log_name, concurrency=1)
        self.queues = queues

    def start(self) -> ManualCaptureWorker:
        from tasks.dispatch import workers_ping

        self.name = f"test-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
        args = processes.celery_args("worker", concurrency=1, queues=self.queues)
        self.proc = processes.spawn(
            args + ["-n", self.name],
            env={"PAYMENT_CAPTURE": "manual"},
            log_path=self.log_path,
        )
        processes.wait_worker_ready(lambda: workers_ping(0.5, [self.name]), timeout=40)
        return self


def _intent(intent_id: str):
    return stripe_client().v1.payment_intents.retrieve(intent_id)


def _types(client, token: str, order_id: str) -> list[tuple[str, dict]]:
    r = client.get(f"/api/orders/{order_id}/timeline", headers=auth(token))
    return [(e["type"], e["data"]) for e in r.json()["data"]["timeline"]]


def test_manual_capture_authorizes_at_confirmed_and_captures_at_ship(client, paused_worker):
    admin = admin_login(client)
    create_product(client, admin["token"], "SKU-MANUAL", price=2500, stock=5)
    customer = register(client)
    worker = ManualCaptureWorker("worker-manual-capture").start()
    try:
        r = place_order(client, customer["token"], [("SKU-MANUAL", 2)], browser_card())
        oid = r.json()["data"]["order"]["id"]
        done = wait_status(client, customer["token"], oid, {"shipped", "failed"}, timeout=40)
    finally:
        worker.stop()
    assert done["status"] == "shipped", done.get("statusReason")
    intent = _intent(intent_id_of(done["id"]))
    assert intent.capture_method == "manual" and intent.status == "succeeded"
    assert done["paidCents"] == done["totalCents"]
    events = _types(client, admin["token"], oid)
    names = [t for t, _ in events]
    confirmed = next(d for t, d in events if t == "order.confirmed")
    assert confirmed["authorized"] is True and confirmed["reason"] == "payment authorized"
    captured = [i for i, (t, d) in enumerate(events) if d.get("captured")]
    assert len(captured) == 1 and names[captured[0]] == "order.payment.processed"
    # Authorized at confirmed, captured afterwards, shipped last.
    assert names.index("order.confirmed") < captured[0] < names.index("order.shipped")


def test_manual_capture_cancel_at_confirmed_voids_the_authorization(client, paused_worker):
    admin = admin_login(client)
    create_product(client, admin["token"], "SKU-MANUAL-VOID", price=2500, stock=5)
    customer = register(client)
    h = auth(customer["token"])
    full = ManualCaptureWorker("worker-manual-void-1").start()
    try:
        oid = place_order(client, customer["token"], [("SKU-MANUAL-VOID", 2)]).json()["data"][
            "order"
        ]["id"]
        pending = wait_status(client, customer["token"], oid, {"payment_pending"})
    finally:
        full.stop()
    # Nobody ships (the orders queue is not consumed): the order stops at confirmed.
    payments_only = ManualCaptureWorker("worker-manual-void-2", "payments,events,maintenance")
    payments_only.start()
    try:
        r = client.post(
            "/api/payments/confirm",
            json={"orderId": oid, "paymentMethodId": browser_card()},
            headers=h,
        )
        assert r.status_code == 202, r.text
        confirmed = wait_status(client, customer["token"], oid, {"confirmed", "failed"})
        assert confirmed["status"] == "confirmed" and confirmed["paidCents"] == 0
        assert _intent(intent_id_of(pending["id"])).status == "requires_capture"
        r = client.delete(f"/api/orders/{oid}", params={"reason": "changed my mind"}, headers=h)
        assert r.status_code == 202, r.text
        deadline = time.monotonic() + 20
        while (
            time.monotonic() < deadline
            and _intent(intent_id_of(pending["id"])).status != "canceled"
        ):
            time.sleep(0.2)
    finally:
        payments_only.stop()
    rest = ManualCaptureWorker("worker-manual-void-3").start()  # release + the stale ship step
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and Product.objects(sku="SKU-MANUAL-VOID").first().holds:
            time.sleep(0.2)

        # The compensation's event may still be on its way to the store (a queued dispatch).
        def voided() -> list:
            return [
                d
                for t, d in _types(client, admin["token"], oid)
                if d.get("compensation") == "cancel_authorization"
            ]

        wait_until(voided, timeout=20)
    finally:
        rest.stop()
    intent = _intent(intent_id_of(pending["id"]))
    assert intent.status == "canceled"
    assert stripe_client().v1.refunds.list({"payment_intent": intent.id}).data == []
    final = client.get(f"/api/orders/{oid}", headers=h).json()["data"]["order"]
    assert final["status"] == "cancelled" and final["refundedCents"] == 0
    product = Product.objects(sku="SKU-MANUAL-VOID").first()
    assert (product.available, product.holds, product.sold) == (5, {}, 0)
    voids = [
        d
        for t, d in _types(client, admin["token"], oid)
        if d.get("compensation") == "cancel_authorization"
    ]
    assert len(voids) == 1 and voids[0]["intentStatus"] == "canceled"
