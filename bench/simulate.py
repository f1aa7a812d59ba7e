"""Realistic traffic through the HTTP API, so a newcomer sees the dashboard and Flower move.

A few customers with saved cards (good, declined at confirm, 3-D Secure) place orders at
a steady rate; some 3-D Secure payments are completed in the emulator, some orders are
cancelled. Cards are made the way a browser would (a token from the Stripe API), only
against the local emulator; never run this against real Stripe.
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass, field

import httpx
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

CARDS = {"good": "4242424242424242", "declined": "4000000000000341", "3ds": "4000002500003155"}
MIX = ("good",) * 7 + ("declined",) * 1 + ("3ds",) * 2
ADDRESS = {
    "name": "Sim Customer",
    "line1": "1 Demo Street",
    "city": "Springfield",
    "postalCode": "12345",
    "country": "US",
}


@dataclass
class Customer:
    token: str
    cards: dict[str, str] = field(default_factory=dict)


@dataclass
class Outcome:
    placed: int = 0
    rejected: int = 0
    cancelled: int = 0
    authenticated: int = 0
    errors: list[str] = field(default_factory=list)


def _token(stripe_base: str, secret_key: str, number: str) -> str:
    r = httpx.post(
        f"{stripe_base}/v1/tokens",
        auth=(secret_key, ""),
        data={
            "card[number]": number,
            "card[exp_month]": "12",
            "card[exp_year]": "2030",
            "card[cvc]": "123",
        },
        timeout=10,
    )
    r.raise_for_status()
    return r.json()["id"]


def _customer(api: httpx.Client, stripe_base: str, secret_key: str, n: int) -> Customer:
    email = f"sim-{uuid.uuid4().hex[:8]}-{n}@example.com"
    r = api.post(
        "/api/users/register",
        json={
            "email": email,
            "password": "simulate-pass-1",
            "firstName": "Sim",
            "lastName": f"User{n}",
        },
    )
    r.raise_for_status()
    customer = Customer(token=r.json()["data"]["token"])
    headers = {"Authorization": f"Bearer {customer.token}"}
    for kind, number in CARDS.items():
        saved = api.post(
            "/api/payments/save-payment-method",
            headers=headers,
            json={"paymentMethodId": _token(stripe_base, secret_key, number)},
        )
        saved.raise_for_status()
        customer.cards[kind] = saved.json()["data"]["paymentMethod"]["id"]
    return customer


def _complete_3ds(
    api: httpx.Client, customer: Customer, order_id: str, stripe_base: str, secret_key: str
) -> bool:
    headers = {"Authorization": f"Bearer {customer.token}"}
    for _ in range(40):
        status = api.get(f"/api/orders/{order_id}", headers=headers).json()["data"]["order"]
        if status["status"] == "requires_action":
            intent = api.post(
                "/api/payments/create-intent", headers=headers, json={"orderId": order_id}
            ).json()["data"]
            r = httpx.post(
                f"{stripe_base}/v1/payment_intents/{intent['paymentIntentId']}/_authenticate",
                auth=(secret_key, ""),
                timeout=10,
                data={"client_secret": intent["clientSecret"], "success": "true"},
            )
            return r.status_code == 200
        if status["status"] in ("failed", "cancelled", "shipped"):
            return False
        time.sleep(0.25)
    return False


def simulate(
    base_url: str,
    stripe_base: str,
    secret_key: str,
    *,
    orders: int,
    rate: float,
    customers: int = 5,
    seed: int | None = None,
) -> Outcome:
    """Place ``orders`` orders at about ``rate`` per second across a few customers."""
    rng = random.Random(seed)
    outcome = Outcome()
    with httpx.Client(base_url=base_url, timeout=15) as api:
        products = [
            p
            for p in api.get("/api/products", params={"limit": 100}).json()["data"]["products"]
            if p["available"] > 0
        ]
        if not products:
            raise RuntimeError("the catalog is empty: run `manage.py seed` first")
        people = [_customer(api, stripe_base, secret_key, n) for n in range(customers)]
        columns = (
            TextColumn("[bold]simulating"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
        )
        with Progress(*columns) as progress:
            task = progress.add_task("orders", total=orders, note="")
            for _ in range(orders):
                started = time.monotonic()
                who = rng.choice(people)
                kind = rng.choice(MIX)
                picks = rng.sample(products, k=min(len(products), rng.randint(1, 2)))
                body = {
                    "items": [{"sku": p["sku"], "quantity": rng.randint(1, 2)} for p in picks],
                    "shippingAddress": ADDRESS,
                    "paymentMethodId": who.cards[kind],
                }
                headers = {
                    "Authorization": f"Bearer {who.token}",
                    "Idempotency-Key": uuid.uuid4().hex,
                }
                r = api.post("/api/orders", json=body, headers=headers)
                if r.status_code != 202:
                    outcome.rejected += 1
                    outcome.errors.append(f"{r.status_code} {r.text[:120]}")
                else:
                    outcome.placed += 1
                    order_id = r.json()["data"]["order"]["id"]
                    if kind == "3ds" and rng.random() < 0.7:
                        outcome.authenticated += _complete_3ds(
                            api, who, order_id, stripe_base, secret_key
                        )
                    elif rng.random() < 0.08:
                        cancel = api.delete(
                            f"/api/orders/{order_id}",
                            params={"reason": "changed my mind"},
                            headers={"Authorization": f"Bearer {who.token}"},
                        )
                        outcome.cancelled += cancel.status_code == 202
                progress.update(
                    task, advance=1, note=f"placed {outcome.placed} rejected {outcome.rejected}"
                )
                time.sleep(max(0.0, 1.0 / rate - (time.monotonic() - started)))
    return outcome
