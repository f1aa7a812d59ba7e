"""What happens in the Stripe Dashboard reaches the order: refunds, disputes, cancels.

Refunds and cancels are made directly on the emulator (as the Dashboard would), then the
event Stripe would send is signed and posted; disputes (absent from localstripe) are sent
as Stripe's own sample dispute object tied to the order's real charge.
"""

from __future__ import annotations

import time

from models.product import Product
from tests.factories import (
    admin_login,
    auth,
    create_product,
    intent_id_of,
    place_order,
    register,
    saved_card,
    status_reason_of,
    stripe_client,
    wait_status,
)
from tests.support.stripe_events import event, post_event, sample


def _shipped_order(client, sku: str):
    admin = admin_login(client)
    create_product(client, admin["token"], sku, price=2500, stock=5)
    customer = register(client)
    pm = saved_card(customer["user"]["id"])
    order_id = place_order(client, customer["token"], [(sku, 1)], pm).json()["data"]["order"]["id"]
    return admin, customer, wait_status(client, customer["token"], order_id, {"shipped"})


def _order(client, token: str, order_id: str) -> dict:
    return client.get(f"/api/orders/{order_id}", headers=auth(token)).json()["data"]["order"]


def _timeline(client, token: str, order_id: str) -> list[dict]:
    r = client.get(f"/api/orders/{order_id}/timeline", headers=auth(token))
    return r.json()["data"]["timeline"]


def _until(fn, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.2)
    return fn()


def _charge_id(intent_id: str) -> str:
    latest = stripe_client().v1.payment_intents.retrieve(intent_id).latest_charge
    return latest if isinstance(latest, str) else latest.id  # localstripe inlines it


def _charge_as_sent(intent_id: str) -> dict:
    """The charge as Stripe puts it in charge.refunded: its sample, with the real values."""
    charge = stripe_client().v1.charges.retrieve(_charge_id(intent_id))
    return sample(
        "charge",
        id=charge.id,
        amount=charge.amount,
        amount_captured=charge.amount,
        amount_refunded=charge.amount_refunded,
        captured=True,
        currency=charge.currency,
        payment_intent=intent_id,
        refunded=charge.amount_refunded >= charge.amount,
        customer=charge.customer,
        payment_method=None,
    )


def test_dashboard_refund_is_recorded_once_then_full_refund_ends_refunded(client, worker):
    admin, _, order = _shipped_order(client, "SKU-DASH-REF")
    token, oid, pi = admin["token"], order["id"], intent_id_of(order["id"])
    stripe_client().v1.refunds.create({"payment_intent": pi, "amount": 1000})  # the Dashboard
    refunded = event("charge.refunded", _charge_as_sent(pi))
    for _ in range(2):  # Stripe may deliver the same event twice
        assert post_event(client, refunded).status_code == 200
    assert _until(lambda: _order(client, token, oid)["refundedCents"] == 1000)
    # Another delivery of the news (a new event id, same refund) changes nothing either.
    assert post_event(client, event("charge.refunded", _charge_as_sent(pi))).status_code == 200
    time.sleep(1.5)
    now = _order(client, token, oid)
    assert now["refundedCents"] == 1000 and now["status"] == "shipped"
    assert [(r["amountCents"], r["source"]) for r in now["refunds"]] == [(1000, "stripe")]
    refund_events = [
        e for e in _timeline(client, token, oid) if e["type"] == "order.payment.refunded"
    ]
    assert [(e["data"]["amountCents"], e["data"]["source"]) for e in refund_events] == [
        (1000, "stripe")
    ]
    # The rest, also in the Dashboard: the order is fully refunded.
    stripe_client().v1.refunds.create({"payment_intent": pi, "amount": order["paidCents"] - 1000})
    assert post_event(client, event("charge.refunded", _charge_as_sent(pi))).status_code == 200
    done = wait_status(client, token, oid, {"refunded"})
    assert done["refundedCents"] == order["paidCents"]
    assert [r["source"] for r in done["refunds"]] == ["stripe", "stripe"]


def test_event_before_our_own_refund_is_recorded_counts_it_once(client, worker):
    from tasks import dispatch
    from tasks.payment_steps import refund_key

    admin, _, order = _shipped_order(client, "SKU-OWN-REF")
    token, oid, pi = admin["token"], order["id"], intent_id_of(order["id"])
    # Our refund step made the refund in Stripe but has not recorded it yet when Stripe's
    # event arrives: the refund carries our key in its metadata.
    key = "admin-partial-1"
    stripe_client().v1.refunds.create(
        {"payment_intent": pi, "amount": 600, "metadata": {"idempotency_key": refund_key(oid, key)}}
    )
    assert post_event(client, event("charge.refunded", _charge_as_sent(pi))).status_code == 200
    assert _until(lambda: _order(client, token, oid)["refundedCents"] == 600)
    # Now our own step finishes (or is retried): Stripe's refund is found by its key.
    dispatch.enqueue_task(
        "payments.refund_payment", order_id=oid, amount_cents=600, key=key, actor="admin"
    )
    time.sleep(2.0)
    now = _order(client, token, oid)
    assert now["refundedCents"] == 600
    assert [(r["amountCents"], r["source"]) for r in now["refunds"]] == [(600, "api")]
    assert len(stripe_client().v1.refunds.list({"payment_intent": pi}).data) == 1
    refund_events = [
        e for e in _timeline(client, token, oid) if e["type"] == "order.payment.refunded"
    ]
    assert len(refund_events) == 1


def _dispute(order: dict, **overrides) -> dict:
    # Stripe's sample has payment_intent null: the order is then found through the charge.
    charge = _charge_id(intent_id_of(order["id"]))
    return sample("dispute", charge=charge, amount=order["paidCents"], **overrides)


def test_dispute_flags_the_order_and_records_its_outcome(client, worker):
    admin, customer, order = _shipped_order(client, "SKU-DISPUTE")
    token, oid = admin["token"], order["id"]
    due = int(time.time()) + 7 * 86400
    opened = _dispute(order, reason="fraudulent", evidence_details={"due_by": due})
    t0 = int(time.time())
    r = post_event(client, event("charge.dispute.created", opened, created=t0))
    assert r.status_code == 200, r.text
    flagged = _until(lambda: (o := _order(client, token, oid))["needsAttention"] and o)
    assert flagged["disputeStatus"] == "warning_needs_response"
    assert flagged["attentionReason"].startswith("payment disputed (fraudulent)")
    [kept] = flagged["disputes"]
    assert kept["id"] == opened["id"] and kept["amountCents"] == order["paidCents"]
    assert kept["reason"] == "fraudulent" and kept["status"] == "warning_needs_response"
    assert kept["dueBy"].startswith(time.strftime("%Y-%m-%d", time.gmtime(due)))
    types = [e["type"] for e in _timeline(client, token, oid)]
    assert "order.payment.disputed" in types and "order.needs_attention" in types
    stats = client.get("/api/orders/stats", headers=auth(token)).json()["data"]["stats"]
    assert stats["disputes"] == {"total": 1, "open": 1, "won": 0, "lost": 0}
    listed = client.get("/api/orders", params={"needsAttention": "true"}, headers=auth(token))
    assert [o["disputeStatus"] for o in listed.json()["data"]["orders"]] == [
        "warning_needs_response"
    ]

    funds = _dispute(order, status="needs_response", reason="fraudulent")
    post_event(client, event("charge.dispute.funds_withdrawn", funds, created=t0 + 1))
    lost = _dispute(order, status="lost", reason="fraudulent")
    post_event(client, event("charge.dispute.closed", lost, created=t0 + 2))
    closed = _until(lambda: (o := _order(client, token, oid))["disputeStatus"] == "lost" and o)
    assert closed["disputes"][0]["status"] == "lost"
    # A late, older update (out of order) does not reopen it.
    late = _dispute(order, status="under_review", reason="fraudulent")
    post_event(client, event("charge.dispute.updated", late, created=t0 + 1))
    time.sleep(1.5)
    assert _order(client, token, oid)["disputeStatus"] == "lost"
    closes = [
        e for e in _timeline(client, token, oid) if e["type"] == "order.payment.dispute_closed"
    ]
    assert [e["data"]["outcome"] for e in closes] == ["lost"]
    stats = client.get("/api/orders/stats", headers=auth(token)).json()["data"]["stats"]
    assert stats["disputes"] == {"total": 1, "open": 0, "won": 0, "lost": 1}
    # The customer sees it on their order too.
    assert _order(client, customer["token"], oid)["disputes"][0]["status"] == "lost"


def test_won_dispute_is_recorded_as_won(client, worker):
    admin, _, order = _shipped_order(client, "SKU-DISPUTE-WON")
    token, oid = admin["token"], order["id"]
    t0 = int(time.time())
    intent_id = intent_id_of(order["id"])
    post_event(client, event("charge.dispute.created", _dispute(order, payment_intent=intent_id)))
    won = _dispute(order, status="won", payment_intent=intent_id)
    post_event(client, event("charge.dispute.closed", won, created=t0 + 5))
    closed = _until(lambda: (o := _order(client, token, oid))["disputeStatus"] == "won" and o)
    assert closed["needsAttention"] is True
    closes = [
        e["data"]["outcome"]
        for e in _timeline(client, token, oid)
        if e["type"] == "order.payment.dispute_closed"
    ]
    assert closes == ["won"]


def test_intent_canceled_in_dashboard_fails_the_order_and_releases_stock(client, worker):
    admin = admin_login(client)
    create_product(client, admin["token"], "SKU-DASH-CANCEL", price=2500, stock=5)
    customer = register(client)
    order = place_order(client, customer["token"], [("SKU-DASH-CANCEL", 2)]).json()["data"]
    oid = order["order"]["id"]
    pending = wait_status(client, customer["token"], oid, {"payment_pending"})
    pi = intent_id_of(pending["id"])
    processing = stripe_client().v1.payment_intents.retrieve(pi).to_dict()
    r = post_event(
        client, event("payment_intent.processing", {**processing, "status": "processing"})
    )
    assert r.status_code == 200
    time.sleep(1.0)
    assert _order(client, customer["token"], oid)["status"] == "payment_pending"
    canceled = stripe_client().v1.payment_intents.cancel(pi)  # the Dashboard's cancel
    assert post_event(client, event("payment_intent.canceled", canceled.to_dict())).status_code == (
        200
    )
    done = wait_status(client, customer["token"], oid, {"failed"})
    assert status_reason_of(done["id"]).startswith("payment canceled in Stripe")
    stock = _until(lambda: Product.objects(sku="SKU-DASH-CANCEL").first().available == 5)
    assert stock
    assert Product.objects(sku="SKU-DASH-CANCEL").first().holds == {}
