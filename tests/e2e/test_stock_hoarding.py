"""Stock hoarding: one account's unpaid orders cannot empty the catalog (real API process,
real worker, real Stripe emulator)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from core.settings import Settings
from devstack import processes
from tests.factories import admin_login, create_product, place_order, register, wait_status

DEFAULTS = {name: field.default for name, field in Settings.model_fields.items()}


@pytest.fixture
def limited_api(worker, artifacts_dir) -> Iterator[httpx.Client]:
    """The API as shipped: the hoarding limits at their defaults (the test profile turns
    them off for the other tests)."""
    port = processes.free_port()
    env = {
        "MAX_UNPAID_ORDERS_PER_CUSTOMER": str(DEFAULTS.get("max_unpaid_orders_per_customer", 3)),
        "MAX_UNPAID_UNITS_PER_PRODUCT": str(DEFAULTS.get("max_unpaid_units_per_product", 10)),
    }
    proc = processes.spawn(
        processes.api_args(port, "--no-access-log"),
        env=env,
        log_path=artifacts_dir / f"hoarding-api-{uuid.uuid4().hex[:6]}.log",
    )
    try:
        processes.wait_port(port, 60, proc)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            yield http
    finally:
        processes.stop(proc)


def test_ten_unpaid_orders_from_one_account_leave_stock_for_others(limited_api) -> None:
    api = limited_api
    admin = admin_login(api)
    sku = f"HOARD-{uuid.uuid4().hex[:6].upper()}"
    create_product(api, admin["token"], sku, stock=20)
    hoarder = register(api)
    codes = []
    accepted = []
    for _ in range(10):  # 10 x 2 units, no payment method: would hold all 20 units
        r = place_order(api, hoarder["token"], [(sku, 2)])
        codes.append((r.status_code, r.json().get("code")))
        if r.status_code == 202:
            accepted.append(r.json()["data"]["order"]["id"])
    assert codes[:3] == [(202, None)] * 3, codes
    assert codes[3:] == [(409, "TOO_MANY_UNPAID_ORDERS")] * 7, codes
    for order_id in accepted:
        wait_status(api, hoarder["token"], order_id, {"payment_pending"})

    # Units of one product across one customer's unpaid orders are capped too.
    bulk = register(api)
    r = place_order(api, bulk["token"], [(sku, 11)])
    assert r.status_code == 409 and r.json()["code"] == "UNPAID_UNITS_LIMIT", r.text
    assert r.json()["errors"][0]["field"] == "items.0.quantity"

    # Somebody else still gets stock.
    other = register(api)
    r = place_order(api, other["token"], [(sku, 5)])
    assert r.status_code == 202, r.text
    order = wait_status(
        api, other["token"], r.json()["data"]["order"]["id"], {"payment_pending", "failed"}
    )
    assert order["status"] == "payment_pending", order
    product = api.get(f"/api/products/{sku}").json()["data"]["product"]
    assert product["available"] == 20 - 6 - 5


def test_orders_without_a_payment_method_hold_stock_for_the_shorter_window(client, worker) -> None:
    from models.order import Order, now_utc
    from tasks.reconcile import reconcile_payments

    hold = DEFAULTS.get("unpaid_hold_no_method_seconds", 900)
    admin = admin_login(client)
    sku = f"HOLD-{uuid.uuid4().hex[:6].upper()}"
    create_product(client, admin["token"], sku, stock=4)
    customer = register(client)
    ids = []
    for _ in range(2):
        r = place_order(client, customer["token"], [(sku, 1)])
        assert r.status_code == 202, r.text
        ids.append(r.json()["data"]["order"]["id"])
        wait_status(client, customer["token"], ids[-1], {"payment_pending"})
    # One placed just past the short hold, one just inside it (the test profile's payment
    # window is an hour, so only the short hold can time the first one out).
    Order.objects(id=ids[0]).update_one(set__created_at=now_utc() - timedelta(seconds=hold + 60))
    Order.objects(id=ids[1]).update_one(set__created_at=now_utc() - timedelta(seconds=hold - 60))
    counts = reconcile_payments()
    assert counts["timed_out"] == 1, counts
    timed_out = wait_status(client, customer["token"], ids[0], {"failed"})
    assert timed_out["status"] == "failed"
    assert Order.get(ids[1]).status == "payment_pending"
