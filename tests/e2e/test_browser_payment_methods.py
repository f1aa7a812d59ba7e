"""Payment methods made in the browser exactly as Stripe.js makes them (no customer yet).

``stripe.createPaymentMethod`` and the Payment Element send ``POST /v1/payment_methods`` with
the card details and no customer; the shop's frontend then sends the ``pm_…`` id to us. Real
SDK against localstripe, real workers, real SecantusDB.
"""

from __future__ import annotations

import time

from core.settings import get_settings
from devstack.stripe_emulator import authenticate_3ds
from models.product import Product
from models.user import User
from tests.factories import (
    CARD_3DS,
    CARD_DECLINED_AT_CONFIRM,
    admin_login,
    auth,
    browser_card,
    create_product,
    intents_for,
    place_order,
    register,
    saved_card,
    status_reason_of,
    stripe_client,
    wait_status,
)


def _setup(client, sku: str, stock: int = 5):
    admin = admin_login(client)
    create_product(client, admin["token"], sku, price=2500, stock=stock)
    return admin, register(client)


def _stock(sku: str) -> tuple[int, dict, int]:
    product = Product.objects(sku=sku).first()
    return product.available, product.holds, product.sold


def _wait_stock(sku: str, expected: tuple[int, dict, int], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _stock(sku) != expected:
        time.sleep(0.1)
    assert _stock(sku) == expected


def _customer_of(user_id: str) -> str | None:
    return User.by_id(user_id).stripe_customer_id


def test_browser_made_method_pays_an_order_end_to_end(client, worker) -> None:
    _, customer = _setup(client, "SKU-BPM")
    pm = browser_card()
    assert stripe_client().v1.payment_methods.retrieve(pm).customer is None
    r = place_order(client, customer["token"], [("SKU-BPM", 2)], pm)
    assert r.status_code == 202, r.text
    order_id = r.json()["data"]["order"]["id"]
    done = wait_status(client, customer["token"], order_id, {"shipped", "failed"})
    assert done["status"] == "shipped", done.get("statusReason")
    assert done["paidCents"] == done["totalCents"]
    # Attached once to the caller's customer, and now listed among their cards.
    assert stripe_client().v1.payment_methods.retrieve(pm).customer == _customer_of(
        customer["user"]["id"]
    )
    mine = client.get("/api/payments/payment-methods/me", headers=auth(customer["token"])).json()
    assert [m["id"] for m in mine["data"]["paymentMethods"]] == [pm]
    assert [(i.status, i.amount) for i in intents_for(order_id)] == [
        ("succeeded", done["totalCents"])
    ]
    _wait_stock("SKU-BPM", (3, {}, 2))


def test_browser_made_3ds_method_pauses_then_pays(client, worker, live_api) -> None:
    _, customer = _setup(client, "SKU-BPM-3DS")
    order_id = place_order(client, customer["token"], [("SKU-BPM-3DS", 1)], browser_card(CARD_3DS))
    order_id = order_id.json()["data"]["order"]["id"]
    paused = wait_status(client, customer["token"], order_id, {"requires_action", "failed"})
    assert paused["status"] == "requires_action"
    intent = client.post(
        "/api/payments/create-intent", json={"orderId": order_id}, headers=auth(customer["token"])
    ).json()["data"]
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


def test_browser_made_method_declined_at_confirm_fails_and_releases_stock(client, worker) -> None:
    _, customer = _setup(client, "SKU-BPM-DECL")
    pm = browser_card(CARD_DECLINED_AT_CONFIRM)
    order_id = place_order(client, customer["token"], [("SKU-BPM-DECL", 2)], pm).json()["data"][
        "order"
    ]["id"]
    done = wait_status(client, customer["token"], order_id, {"failed", "shipped"})
    assert done["status"] == "failed"
    assert "declined" in done["statusReason"]
    _wait_stock("SKU-BPM-DECL", (5, {}, 0))
    assert not [i for i in intents_for(order_id) if i.status == "succeeded"]


def test_confirm_and_save_accept_a_browser_made_method(client, worker) -> None:
    _, customer = _setup(client, "SKU-BPM-CONF")
    h = auth(customer["token"])
    order_id = place_order(client, customer["token"], [("SKU-BPM-CONF", 1)]).json()["data"][
        "order"
    ]["id"]
    wait_status(client, customer["token"], order_id, {"payment_pending"})
    r = client.post(
        "/api/payments/confirm",
        json={"orderId": order_id, "paymentMethodId": browser_card()},
        headers=h,
    )
    assert r.status_code == 202, r.text
    assert wait_status(client, customer["token"], order_id, {"shipped", "failed"})["status"] == (
        "shipped"
    )
    saved = client.post(
        "/api/payments/save-payment-method", json={"paymentMethodId": browser_card()}, headers=h
    )
    assert saved.status_code == 201, saved.text
    again = client.post(
        "/api/payments/save-payment-method",
        json={"paymentMethodId": saved.json()["data"]["paymentMethod"]["id"]},
        headers=h,
    )
    assert again.status_code == 201  # already mine: used as is, not attached twice
    mine = client.get("/api/payments/payment-methods/me", headers=h).json()["data"]
    assert len(mine["paymentMethods"]) == 2


def test_another_customers_saved_method_is_refused_and_nothing_is_charged(client, worker) -> None:
    _, alice = _setup(client, "SKU-BPM-THEFT")
    bob = register(client)
    alice_pm = saved_card(alice["user"]["id"])
    alice_customer = _customer_of(alice["user"]["id"])
    charges_before = len(stripe_client().v1.charges.list({"limit": 100}).data)

    # At the order: the order fails as if the card did not exist, holding no stock.
    r = place_order(client, bob["token"], [("SKU-BPM-THEFT", 2)], alice_pm)
    assert r.status_code == 202
    order_id = r.json()["data"]["order"]["id"]
    done = wait_status(client, bob["token"], order_id, {"failed", "shipped"})
    assert done["status"] == "failed"
    assert status_reason_of(done["id"]) == "payment method not found"
    _wait_stock("SKU-BPM-THEFT", (5, {}, 0))
    assert intents_for(order_id) == []

    # At confirm and save: 404 PAYMENT_METHOD_NOT_FOUND, the card stays Alice's.
    waiting = place_order(client, bob["token"], [("SKU-BPM-THEFT", 1)]).json()["data"]["order"]
    wait_status(client, bob["token"], waiting["id"], {"payment_pending"})
    h = auth(bob["token"])
    confirm = client.post(
        "/api/payments/confirm",
        json={"orderId": waiting["id"], "paymentMethodId": alice_pm},
        headers=h,
    )
    assert confirm.status_code == 404 and confirm.json()["code"] == "PAYMENT_METHOD_NOT_FOUND"
    save = client.post(
        "/api/payments/save-payment-method", json={"paymentMethodId": alice_pm}, headers=h
    )
    assert save.status_code == 404 and save.json()["code"] == "PAYMENT_METHOD_NOT_FOUND"
    unknown = client.post(
        "/api/payments/confirm",
        json={"orderId": waiting["id"], "paymentMethodId": "pm_doesnotexist123"},
        headers=h,
    )
    assert unknown.status_code == 404 and unknown.json()["code"] == "PAYMENT_METHOD_NOT_FOUND"
    time.sleep(0.5)
    still = client.get(f"/api/orders/{waiting['id']}", headers=h).json()["data"]["order"]
    assert still["status"] == "payment_pending"
    assert stripe_client().v1.payment_methods.retrieve(alice_pm).customer == alice_customer
    assert len(stripe_client().v1.charges.list({"limit": 100}).data) == charges_before
