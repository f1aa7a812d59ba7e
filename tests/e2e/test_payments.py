"""Payments through the real stripe SDK on localstripe: declines, 3-D Secure, refunds, webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import httpx

from core.settings import get_settings
from devstack.stripe_emulator import authenticate_3ds
from models.product import Product
from tests.factories import (
    CARD_3DS,
    CARD_DECLINED_AT_ATTACH,
    CARD_DECLINED_AT_CONFIRM,
    admin_login,
    auth,
    create_product,
    intent_id_of,
    intents_for,
    place_order,
    register,
    saved_card,
    stripe_client,
    wait_status,
)


def _sign(body: bytes, t: int | None = None, secret: str | None = None) -> str:
    t = int(time.time()) if t is None else t
    secret = secret or get_settings().stripe_webhook_secret
    sig = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={sig}"


def _setup(client, sku: str, stock: int = 5):
    admin = admin_login(client)
    create_product(client, admin["token"], sku, price=2500, stock=stock)
    return admin, register(client)


def test_decline_at_confirm_fails_with_reason_and_releases_stock(client, worker) -> None:
    _, customer = _setup(client, "SKU-DECL")
    pm = saved_card(customer["user"]["id"], CARD_DECLINED_AT_CONFIRM)
    order_id = place_order(client, customer["token"], [("SKU-DECL", 2)], pm).json()["data"][
        "order"
    ]["id"]
    done = wait_status(client, customer["token"], order_id, {"failed", "shipped"})
    assert done["status"] == "failed"
    assert "declined" in done["statusReason"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and Product.objects(sku="SKU-DECL").first().available != 5:
        time.sleep(0.1)
    product = Product.objects(sku="SKU-DECL").first()
    assert (product.available, product.holds, product.sold) == (5, {}, 0)
    assert not [i for i in intents_for(order_id) if i.status == "succeeded"]


def test_card_declined_when_saved_gives_clear_message(client) -> None:
    customer = register(client)
    card = {"number": CARD_DECLINED_AT_ATTACH, "exp_month": 12, "exp_year": 2030, "cvc": "123"}
    pm = stripe_client().v1.payment_methods.create({"type": "card", "card": card}).id
    r = client.post(
        "/api/payments/save-payment-method",
        json={"paymentMethodId": pm},
        headers=auth(customer["token"]),
    )
    assert r.status_code == 402
    assert r.json()["code"] == "CARD_DECLINED" and r.json()["message"]


def test_3ds_pauses_then_webhook_moves_it_to_shipped(client, worker, live_api) -> None:
    _, customer = _setup(client, "SKU-3DS")
    pm = saved_card(customer["user"]["id"], CARD_3DS)
    order_id = place_order(client, customer["token"], [("SKU-3DS", 1)], pm).json()["data"]["order"][
        "id"
    ]
    paused = wait_status(client, customer["token"], order_id, {"requires_action", "failed"})
    assert paused["status"] == "requires_action"
    intent = client.post(
        "/api/payments/create-intent", json={"orderId": order_id}, headers=auth(customer["token"])
    ).json()["data"]
    assert intent["status"] == "requires_action" and intent["clientSecret"]
    settings = get_settings()
    authenticate_3ds(
        settings.stripe_api_base,
        intent["paymentIntentId"],
        intent["clientSecret"],
        True,
        settings.stripe_api_key,
    )
    done = wait_status(client, customer["token"], order_id, {"shipped", "failed"}, timeout=30)
    assert done["status"] == "shipped"
    assert [i.status for i in intents_for(order_id)] == ["succeeded"]


def test_webhook_signature_checks_and_duplicates(client, worker) -> None:
    _, customer = _setup(client, "SKU-HOOK")
    order_id = place_order(client, customer["token"], [("SKU-HOOK", 1)]).json()["data"]["order"][
        "id"
    ]
    wait_status(client, customer["token"], order_id, {"payment_pending"})
    event = {
        "id": "evt_test_dup_1",
        "type": "payment_intent.succeeded",
        "data": {
            "object": {
                "id": intent_id_of(order_id),
                "object": "payment_intent",
                "metadata": {"order_id": order_id},
            }
        },
    }
    body = json.dumps(event).encode()
    url = "/api/payments/webhook"
    bad = client.post(
        url, content=body, headers={"Stripe-Signature": _sign(body, secret="whsec_x")}
    )
    stale = client.post(
        url, content=body, headers={"Stripe-Signature": _sign(body, t=int(time.time()) - 3600)}
    )
    missing = client.post(url, content=body)
    garbage = client.post(
        url, content=b"{not json", headers={"Stripe-Signature": _sign(b"{not json")}
    )
    for r in (bad, stale, missing, garbage):
        assert r.status_code == 400, r.text
    unknown_body = json.dumps(
        {"id": "evt_x", "type": "customer.updated", "data": {"object": {}}}
    ).encode()
    unknown = client.post(
        url, content=unknown_body, headers={"Stripe-Signature": _sign(unknown_body)}
    )
    assert unknown.status_code == 200 and unknown.json()["data"]["ignored"] == "customer.updated"
    first = client.post(url, content=body, headers={"Stripe-Signature": _sign(body)})
    again = client.post(url, content=body, headers={"Stripe-Signature": _sign(body)})
    assert first.status_code == 200 and first.json()["data"].get("duplicate") is None
    assert again.status_code == 200 and again.json()["data"]["duplicate"] is True
    # The intent did not succeed: acting on its current state changes nothing.
    time.sleep(1.0)
    after = client.get(f"/api/orders/{order_id}", headers=auth(customer["token"])).json()
    assert after["data"]["order"]["status"] == "payment_pending"


def test_refunds_partial_full_too_much_and_unpaid(client, worker) -> None:
    admin, customer = _setup(client, "SKU-REF")
    pm = saved_card(customer["user"]["id"])
    order_id = place_order(client, customer["token"], [("SKU-REF", 1)], pm).json()["data"]["order"][
        "id"
    ]
    shipped = wait_status(client, customer["token"], order_id, {"shipped"})
    total = shipped["paidCents"]
    unpaid_id = place_order(client, customer["token"], [("SKU-REF", 1)]).json()["data"]["order"][
        "id"
    ]
    wait_status(client, customer["token"], unpaid_id, {"payment_pending"})
    r = client.post(
        "/api/payments/refund",
        json={"orderId": unpaid_id, "reason": "x"},
        headers=auth(admin["token"]),
    )
    assert r.status_code == 409 and r.json()["code"] == "ORDER_NOT_PAID"
    r = client.post(
        "/api/payments/refund",
        json={"orderId": order_id, "reason": "x"},
        headers=auth(customer["token"]),
    )
    assert r.status_code == 409  # shipped, not delivered: outside the customer's policy
    part = client.post(
        "/api/payments/refund",
        json={"orderId": order_id, "amountCents": 1000, "reason": "damaged box"},
        headers=auth(admin["token"]),
    )
    assert part.status_code == 202, part.text
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        o = client.get(f"/api/orders/{order_id}", headers=auth(admin["token"])).json()["data"][
            "order"
        ]
        if o["refundedCents"] == 1000:
            break
        time.sleep(0.2)
    assert o["refundedCents"] == 1000 and o["status"] == "shipped"
    too_much = client.post(
        "/api/payments/refund",
        json={"orderId": order_id, "amountCents": total, "reason": "x"},
        headers=auth(admin["token"]),
    )
    assert too_much.status_code == 400 and too_much.json()["code"] == "REFUND_TOO_LARGE"
    rest = client.post(
        "/api/payments/refund",
        json={"orderId": order_id, "reason": "all of it"},
        headers=auth(admin["token"]),
    )
    assert rest.status_code == 202
    done = wait_status(client, admin["token"], order_id, {"refunded"})
    assert done["refundedCents"] == total
    charges = stripe_client().v1.charges.list({"limit": 100}).data
    charge = next(c for c in charges if c.payment_intent == intent_id_of(order_id))
    assert charge.amount_refunded == total


def test_other_customers_stripe_objects_are_404(client, worker) -> None:
    _, alice = _setup(client, "SKU-OWN")
    bob = register(client)
    alice_pm = saved_card(alice["user"]["id"])
    alice_customer = client.get("/api/users/profile", headers=auth(alice["token"])).json()
    customer_id = alice_customer["data"]["user"]["stripeCustomerId"]
    order_id = place_order(client, alice["token"], [("SKU-OWN", 1)], alice_pm).json()["data"][
        "order"
    ]["id"]
    wait_status(client, alice["token"], order_id, {"shipped"})
    h = auth(bob["token"])
    assert client.get(f"/api/payments/payment-methods/{customer_id}", headers=h).status_code == 404
    assert client.get(f"/api/payments/history/{customer_id}", headers=h).status_code == 404
    assert (
        client.post(
            "/api/payments/save-payment-method", json={"paymentMethodId": alice_pm}, headers=h
        ).status_code
        == 404
    )
    assert (
        client.post(
            "/api/payments/refund", json={"orderId": order_id, "reason": "x"}, headers=h
        ).status_code
        == 404
    )
    assert (
        client.post(
            "/api/payments/create-intent", json={"orderId": order_id}, headers=h
        ).status_code
        == 404
    )
    mine = client.get("/api/payments/payment-methods/me", headers=auth(alice["token"])).json()
    assert [m["id"] for m in mine["data"]["paymentMethods"]] == [alice_pm]


def test_live_webhook_endpoint_rejects_unsigned(live_api) -> None:
    r = httpx.post(f"{live_api}/api/payments/webhook", content=b"{}")
    assert r.status_code == 400


def test_webhook_for_a_settled_order_is_acknowledged_without_work(client, worker) -> None:
    from models.webhook import WebhookEvent

    _, customer = _setup(client, "SKU-HOOK-DONE")
    pm = saved_card(customer["user"]["id"])
    order_id = place_order(client, customer["token"], [("SKU-HOOK-DONE", 1)], pm).json()["data"][
        "order"
    ]["id"]
    order = wait_status(client, customer["token"], order_id, {"shipped"})
    event = {
        "id": "evt_test_settled_1",
        "type": "payment_intent.succeeded",
        "data": {
            "object": {
                "id": intent_id_of(order_id),
                "object": "payment_intent",
                "metadata": {"order_id": order_id},
            }
        },
    }
    body = json.dumps(event).encode()
    for _ in range(2):
        r = client.post(
            "/api/payments/webhook", content=body, headers={"Stripe-Signature": _sign(body)}
        )
        assert r.status_code == 200, r.text
        assert r.json()["data"] == {"received": True, "settled": "shipped"}
    # Nothing to act on: no dedupe record kept, and the order is untouched.
    assert WebhookEvent.objects(id="evt_test_settled_1").count() == 0
    time.sleep(0.5)
    after = client.get(f"/api/orders/{order_id}", headers=auth(customer["token"])).json()
    assert after["data"]["order"]["status"] == "shipped"
    assert after["data"]["order"]["version"] == order["version"]


def test_refund_with_idempotency_key_refunds_once(client, worker) -> None:
    admin, customer = _setup(client, "SKU-REF-IDEM")
    pm = saved_card(customer["user"]["id"])
    order_id = place_order(client, customer["token"], [("SKU-REF-IDEM", 1)], pm).json()["data"][
        "order"
    ]["id"]
    shipped = wait_status(client, customer["token"], order_id, {"shipped"})
    h = {**auth(admin["token"]), "Idempotency-Key": "refund-damaged-box-1"}
    body = {"orderId": order_id, "amountCents": 700, "reason": "damaged box"}
    first = client.post("/api/payments/refund", json=body, headers=h)
    second = client.post("/api/payments/refund", json=body, headers=h)
    assert first.status_code == 202, first.text
    assert second.status_code == 200, second.text
    assert second.json()["data"] == first.json()["data"]
    other = client.post("/api/payments/refund", json={**body, "amountCents": 800}, headers=h)
    assert other.status_code == 409 and other.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        o = client.get(f"/api/orders/{order_id}", headers=auth(admin["token"])).json()["data"][
            "order"
        ]
        if o["refundedCents"]:
            break
        time.sleep(0.2)
    time.sleep(1.0)  # a second refund, if one were queued, would land by now
    third = client.post("/api/payments/refund", json=body, headers=h)
    assert third.status_code == 200  # still the same refund, even after it was made
    o = client.get(f"/api/orders/{order_id}", headers=auth(admin["token"])).json()["data"]["order"]
    assert o["refundedCents"] == 700
    refunds = (
        stripe_client()
        .v1.refunds.list({"payment_intent": intent_id_of(shipped["id"]), "limit": 100})
        .data
    )
    assert [r.amount for r in refunds] == [700]
