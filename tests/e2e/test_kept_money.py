"""Money kept for an order that did not ship is returned with no operator action."""

from __future__ import annotations

import time
import uuid

from core.settings import get_settings
from devstack import processes
from devstack.stripe_emulator import register_webhook
from tests.conftest import ARTIFACTS
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
from tests.support.stripe_events import event, post_event

BEAT_INTERVAL = 3.0


def _cancelled_order_with_open_intent(client, worker, sku: str) -> tuple[dict, dict, str]:
    """An order cancelled while its compensation was lost: the intent stays payable.

    Pausing a worker on the Redis transport can still hand it one message (a BRPOP already
    waiting), so the compensation sometimes runs anyway: then the intent is no longer
    payable and the scene is set up again with a new order, at most three times.
    """
    worker.resume()  # the fixture starts paused
    admin = admin_login(client)
    create_product(client, admin["token"], sku, price=2500, stock=5)
    customer = register(client)
    for _ in range(3):
        oid = place_order(client, customer["token"], [(sku, 1)]).json()["data"]["order"]["id"]
        pending = wait_status(client, customer["token"], oid, {"payment_pending"})
        worker.pause()
        r = client.delete(
            f"/api/orders/{oid}",
            params={"reason": "changed my mind"},
            headers=auth(customer["token"]),
        )
        assert r.status_code == 202, r.text
        worker.purge()  # the cancel_intent compensation is lost
        worker.resume()
        intent_id = intent_id_of(pending["id"])
        if stripe_client().v1.payment_intents.retrieve(intent_id).status != "canceled":
            return admin, customer, intent_id
    raise AssertionError("the compensation could not be held back in three tries")


def _pay_in_browser(intent_id: str) -> None:
    """The customer's open tab still pays: a Stripe.js method, then confirm."""
    sc = stripe_client()
    sc.v1.payment_intents.update(intent_id, {"payment_method": browser_card()})
    assert sc.v1.payment_intents.confirm(intent_id).status == "succeeded"


def _refunded(intent_id: str) -> int:
    return sum(r.amount for r in stripe_client().v1.refunds.list({"payment_intent": intent_id}))


def test_intent_paid_after_cancel_is_refunded_by_the_beat_sweep(
    client, paused_worker, live_api
) -> None:
    settings = get_settings()
    # Stripe's own webhook would also do it; keep it off so the sweep alone is tested.
    register_webhook(settings.stripe_api_base, f"{live_api}/none", "x", events=["customer.created"])
    beat = processes.spawn(
        processes.celery_args("beat") + ["-s", str(ARTIFACTS / f"beat-{uuid.uuid4().hex}")],
        env={"BEAT_RECONCILE_INTERVAL": str(BEAT_INTERVAL)},
        log_path=ARTIFACTS / "beat-kept-money.log",
    )
    try:
        admin, customer, pi = _cancelled_order_with_open_intent(
            client, paused_worker, "SKU-KEPT-BEAT"
        )
        time.sleep(BEAT_INTERVAL)  # beat is up and ticking
        _pay_in_browser(pi)
        paid_at = time.monotonic()
        amount = stripe_client().v1.payment_intents.retrieve(pi).amount
        while time.monotonic() - paid_at < BEAT_INTERVAL + 5 and _refunded(pi) < amount:
            time.sleep(0.2)
        elapsed = time.monotonic() - paid_at
    finally:
        processes.stop(beat)
        register_webhook(
            settings.stripe_api_base,
            f"{live_api}/api/payments/webhook",
            settings.stripe_webhook_secret,
        )
    assert _refunded(pi) == amount, f"not refunded {elapsed:.1f}s after the payment"
    oid = stripe_client().v1.payment_intents.retrieve(pi).metadata["order_id"]
    order = client.get(f"/api/orders/{oid}", headers=auth(admin["token"])).json()["data"]["order"]
    assert order["status"] == "cancelled"
    assert (order["paidCents"], order["refundedCents"]) == (amount, amount)
    timeline = client.get(f"/api/orders/{oid}/timeline", headers=auth(admin["token"])).json()
    refunds = [e for e in timeline["data"]["timeline"] if e["type"] == "order.payment.refunded"]
    assert [e["data"]["actor"] for e in refunds] == ["system:auto-refund:sweep"]
    assert "returned automatically" in refunds[0]["data"]["reason"]

    from tasks.invariants import no_money_kept_for_unshipped_orders

    assert [v for v in no_money_kept_for_unshipped_orders() if v.subject == oid] == []


def test_intent_paid_after_cancel_is_refunded_from_the_webhook(client, paused_worker) -> None:
    from tasks.invariants import no_money_kept_for_unshipped_orders

    admin, _, pi = _cancelled_order_with_open_intent(client, paused_worker, "SKU-KEPT-HOOK")
    _pay_in_browser(pi)
    intent = stripe_client().v1.payment_intents.retrieve(pi)
    oid = intent.metadata["order_id"]
    # Before anything acts, the invariants command reports the kept money.
    kept = [v for v in no_money_kept_for_unshipped_orders() if v.subject == oid]
    assert [v.check for v in kept] == ["money_kept"] and "cancelled" in kept[0].detail
    succeeded = event("payment_intent.succeeded", intent.to_dict())
    for _ in range(2):
        assert post_event(client, succeeded).status_code == 200
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _refunded(pi) < intent.amount:
        time.sleep(0.2)
    assert _refunded(pi) == intent.amount
    time.sleep(1.0)
    assert len(stripe_client().v1.refunds.list({"payment_intent": pi}).data) == 1
    order = client.get(f"/api/orders/{oid}", headers=auth(admin["token"])).json()["data"]["order"]
    assert order["refundedCents"] == intent.amount and order["status"] == "cancelled"
    assert [v for v in no_money_kept_for_unshipped_orders() if v.subject == oid] == []
