"""Test-side actors: a customer registering, an admin, a browser making cards.

They go through the real HTTP API and the real stripe SDK against the emulator, exactly
as a client would; nothing here touches our internals.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import stripe

from core.settings import get_settings

VALID_ADDRESS = {
    "name": "Ada Lovelace",
    "line1": "1 Analytical Way",
    "city": "London",
    "postalCode": "N1 9GU",
    "country": "GB",
}
CARD_OK = "4242424242424242"
CARD_DECLINED_AT_ATTACH = "4000000000000002"
CARD_DECLINED_AT_CONFIRM = "4000000000000341"
CARD_3DS = "4000002500003155"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def register(client, email: str | None = None, password: str = "correct-horse-9") -> dict[str, Any]:
    email = email or f"user-{uuid.uuid4().hex[:10]}@example.com"
    r = client.post(
        "/api/users/register",
        json={"email": email, "password": password, "firstName": "Test", "lastName": "User"},
    )
    assert r.status_code == 201, r.text
    data = r.json()["data"]
    return {"token": data["token"], "user": data["user"], "email": email, "password": password}


def admin_login(client) -> dict[str, Any]:
    from models.user import User

    settings = get_settings()
    User.ensure_admin(settings.admin_email, settings.admin_password)
    r = client.post(
        "/api/users/login",
        json={"email": settings.admin_email, "password": settings.admin_password},
    )
    assert r.status_code == 200, r.text
    return {"token": r.json()["data"]["token"], "user": r.json()["data"]["user"]}


def create_product(client, admin_token: str, sku: str, price: int = 1000, stock: int = 10) -> dict:
    r = client.post(
        "/api/products",
        json={"sku": sku, "name": f"Product {sku}", "priceCents": price, "stock": stock},
        headers=auth(admin_token),
    )
    assert r.status_code == 201, r.text
    return r.json()["data"]["product"]


def stripe_client() -> stripe.StripeClient:
    s = get_settings()
    return stripe.StripeClient(s.stripe_api_key, base_addresses={"api": s.stripe_api_base})


def browser_card(number: str = CARD_OK) -> str:
    """What Stripe.js ``createPaymentMethod`` / the Payment Element make: a ``pm_…`` with
    card details and no customer (``POST /v1/payment_methods``)."""
    card = {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"}
    return stripe_client().v1.payment_methods.create({"type": "card", "card": card}).id


def saved_card(user_id: str, number: str = CARD_OK) -> str:
    """What the browser + save-payment-method do: a card on the user's Stripe customer."""
    from gateways.stripe_gateway import get_gateway
    from models.user import User
    from tasks.payment_steps import ensure_customer

    user = User.by_id(user_id)
    customer = ensure_customer(user)
    card = {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"}
    pm = stripe_client().v1.payment_methods.create({"type": "card", "card": card}).id
    return get_gateway().attach_payment_method(customer, pm).id


def customer_with_card(client, sku: str, stock: int = 5) -> tuple[dict[str, Any], str]:
    """A product `sku` in stock, a new customer, and a saved 4242 card: (customer, card id)."""
    admin = admin_login(client)
    create_product(client, admin["token"], sku, stock=stock)
    customer = register(client)
    return customer, saved_card(customer["user"]["id"])


def place_order(
    client,
    token: str,
    items: list[tuple[str, int]],
    pm: str | None = None,
    headers: dict[str, str] | None = None,
):
    body: dict[str, Any] = {
        "items": [{"sku": s, "quantity": q} for s, q in items],
        "shippingAddress": VALID_ADDRESS,
    }
    if pm:
        body["paymentMethodId"] = pm
    return client.post("/api/orders", json=body, headers={**auth(token), **(headers or {})})


def wait_status(client, token: str, order_id: str, statuses: set[str], timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    order: dict[str, Any] = {}
    while time.monotonic() < deadline:
        r = client.get(f"/api/orders/{order_id}", headers=auth(token))
        assert r.status_code == 200, r.text
        order = r.json()["data"]["order"]
        if order["status"] in statuses:
            return order
        time.sleep(0.15)
    raise AssertionError(f"order {order_id} stayed {order.get('status')} (wanted {statuses})")


def intents_for(order_id: str) -> list:
    from gateways.stripe_gateway import get_gateway

    return get_gateway().list_intents_for_order(order_id)


def status_reason_of(order_id: str) -> str | None:
    """The order's status reason as recorded (customers' views carry it in plain words)."""
    from models.order import Order

    order = Order.get(order_id)
    return order.status_reason if order else None


def intent_id_of(order_id: str) -> str | None:
    """The order's PaymentIntent id, from the store: customers' API views do not carry it."""
    from models.order import Order

    order = Order.get(order_id)
    return order.payment_intent_id if order else None
