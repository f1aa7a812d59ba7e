"""Customers as the bench sees them: register, save a card, place orders over HTTP.

Everything goes through the real API and the real stripe SDK against the emulator, as a
client would; the bench reads Mongo directly only to observe (never to move an order).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

CARD_OK = "4242424242424242"
CARD_3DS = "4000002500003155"
CARD_DECLINED_AT_CONFIRM = "4000000000000341"
ADDRESS = {
    "name": "Bench Customer",
    "line1": "1 Load Street",
    "city": "London",
    "postalCode": "N1 9GU",
    "country": "GB",
}
TERMINAL = ("shipped", "delivered", "failed", "cancelled", "refunded")


@dataclass
class Customer:
    token: str
    user_id: str
    email: str
    cards: dict[str, str] = field(default_factory=dict)  # card number -> payment method id

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Submission:
    """One POST /api/orders as the client saw it."""

    started: float  # wall clock (time.time()) when the request was sent
    latency: float  # seconds until the answer
    status: int  # HTTP status, 0 for a transport error
    order_id: str | None
    card: str
    error: str | None = None


def stripe_client(api_base: str):
    import stripe

    from core.settings import get_settings

    return stripe.StripeClient(get_settings().stripe_api_key, base_addresses={"api": api_base})


def register(http: httpx.Client, tag: str) -> Customer:
    email = f"{tag}-{uuid.uuid4().hex[:10]}@example.com"
    r = http.post(
        "/api/users/register",
        json={"email": email, "password": "bench-password-9", "firstName": "B", "lastName": "U"},
    )
    r.raise_for_status()
    data = r.json()["data"]
    return Customer(token=data["token"], user_id=data["user"]["id"], email=email)


def save_card(http: httpx.Client, stripe_base: str, customer: Customer, number: str) -> str:
    card = {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"}
    pm = stripe_client(stripe_base).v1.payment_methods.create({"type": "card", "card": card}).id
    r = http.post(
        "/api/payments/save-payment-method",
        json={"paymentMethodId": pm},
        headers=customer.headers,
    )
    r.raise_for_status()
    customer.cards[number] = pm
    return pm


def make_customers(
    api_base: str, stripe_base: str, count: int, cards: tuple[str, ...] = (CARD_OK,)
) -> list[Customer]:
    """Register ``count`` customers and save the given cards for each (in parallel)."""

    def one(i: int) -> Customer:
        with httpx.Client(base_url=api_base, timeout=30) as http:
            customer = register(http, f"bench{i}")
            for number in cards:
                save_card(http, stripe_base, customer, number)
            return customer

    with ThreadPoolExecutor(max_workers=min(8, count)) as pool:
        return list(pool.map(one, range(count)))


def place_order(
    http: httpx.Client, customer: Customer, sku: str, card: str = CARD_OK, quantity: int = 1
) -> Submission:
    body = {
        "items": [{"sku": sku, "quantity": quantity}],
        "shippingAddress": ADDRESS,
        "paymentMethodId": customer.cards[card],
    }
    started = time.time()
    t0 = time.perf_counter()
    try:
        r = http.post("/api/orders", json=body, headers=customer.headers)
    except httpx.HTTPError as exc:
        return Submission(started, time.perf_counter() - t0, 0, None, card, repr(exc)[:200])
    latency = time.perf_counter() - t0
    order_id = None
    error = None
    if r.status_code == 202:
        order_id = r.json()["data"]["order"]["id"]
    else:
        error = r.text[:200]
    return Submission(started, latency, r.status_code, order_id, card, error)


def submit_orders(
    api_base: str,
    customers: list[Customer],
    total: int,
    clients: int,
    sku: str,
    card_for: Callable[[int], str] = lambda _i: CARD_OK,
    on_submit: Callable[[Submission], None] | None = None,
    rate: float | None = None,
    barrier: bool = False,
) -> list[Submission]:
    """``clients`` threads, each with its own connection, submit ``total`` orders in all.

    ``rate`` paces the submissions (orders/s over all clients); ``barrier`` makes every
    client send its first order at the same moment (a race, not a load test).
    """
    results: list[Submission] = []
    lock = threading.Lock()
    counter = iter(range(total))
    t0 = time.monotonic()
    gate = threading.Barrier(clients) if barrier else None

    def client(n: int) -> None:
        with httpx.Client(base_url=api_base, timeout=30) as http:
            if gate is not None:
                http.get("/health")  # connect first, so the race is between the requests
                gate.wait(30)
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                if rate:
                    time.sleep(max(0.0, t0 + i / rate - time.monotonic()))
                customer = customers[(n + i) % len(customers)]
                sub = place_order(http, customer, sku, card_for(i))
                with lock:
                    results.append(sub)
                if on_submit is not None:
                    on_submit(sub)

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def order_states(db: Any, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Status, timestamps and flags of the given orders, straight from Mongo."""
    from bson import ObjectId

    out: dict[str, dict[str, Any]] = {}
    fields = {
        "status": 1,
        "shipped_at": 1,
        "created_at": 1,
        "updated_at": 1,
        "needs_attention": 1,
        "resume_count": 1,
        "history.actor": 1,
        "payment_intent_id": 1,
        "items": 1,
        "status_reason": 1,
        "attention_reason": 1,
    }
    for start in range(0, len(ids), 200):
        chunk = [ObjectId(i) for i in ids[start : start + 200]]
        for doc in db.orders.find({"_id": {"$in": chunk}}, fields):
            out[str(doc["_id"])] = doc
    return out


def count_finished(db: Any, since: Any) -> int:
    return db.orders.count_documents(
        {"status": {"$in": list(TERMINAL)}, "created_at": {"$gte": since}}
    )
