"""The order chain end to end: real API, real worker subprocess, real Mongo, real Stripe SDK."""

from __future__ import annotations

from models.order import Order
from models.product import Product
from tests.factories import (
    CARD_OK,
    admin_login,
    auth,
    create_product,
    intent_id_of,
    intents_for,
    place_order,
    register,
    saved_card,
    wait_status,
)


def test_happy_path_priced_on_server_and_shipped(client, worker) -> None:
    admin = admin_login(client)
    create_product(client, admin["token"], "SKU-A", price=1999, stock=10)
    create_product(client, admin["token"], "SKU-B", price=500, stock=5)
    customer = register(client)
    pm = saved_card(customer["user"]["id"], CARD_OK)

    r = place_order(
        client,
        customer["token"],
        [("SKU-A", 2), ("SKU-B", 1)],
        pm,
        headers={"X-Correlation-ID": "e2e-happy-1"},
    )
    assert r.status_code == 202, r.text
    order = r.json()["data"]["order"]
    assert order["status"] == "pending"
    assert r.headers["location"] == f"/api/orders/{order['id']}"
    subtotal = 2 * 1999 + 500
    tax = (subtotal * 825 + 5000) // 10000
    assert order["subtotalCents"] == subtotal
    assert order["taxCents"] == tax
    assert order["shippingCents"] == 599
    assert order["totalCents"] == subtotal + tax + 599
    # The chain's correlation id is an admin's field; the customer's view leaves it out.
    assert "correlationId" not in order
    assert Order.get(order["id"]).correlation_id == "e2e-happy-1"

    done = wait_status(client, customer["token"], order["id"], {"shipped", "failed"})
    assert done["status"] == "shipped", done["statusReason"]
    assert [h["status"] for h in done["history"]] == [
        "pending",
        "reserved",
        "payment_pending",
        "confirmed",
        "shipped",
    ]
    assert done["trackingNumber"] and done["carrier"]
    assert done["paidCents"] == done["totalCents"]

    a = Product.objects(sku="SKU-A").first()
    assert (a.available, a.sold, a.holds) == (8, 2, {})
    succeeded = [i for i in intents_for(order["id"]) if i.status == "succeeded"]
    assert len(succeeded) == 1 and succeeded[0].amount == done["totalCents"]

    # Every task of this order logged with the same correlation id.
    steps = ("reserve_inventory", "create_payment_intent", "confirm_payment", "ship_order")
    lines = [
        ln
        for ln in worker.log().splitlines()
        if order["id"] in ln
        and any(f'"task_name": "{p}.{s}"' in ln for p in ("orders", "payments") for s in steps)
    ]
    assert lines, "worker logged nothing for the order"
    assert all('"correlation_id": "e2e-happy-1"' in ln for ln in lines)
    tasks = {ln.split('"task_name": "')[1].split('"')[0] for ln in lines}
    assert {
        "orders.reserve_inventory",
        "payments.create_payment_intent",
        "payments.confirm_payment",
        "orders.ship_order",
    } <= tasks


def test_out_of_stock_fails_naming_sku_and_holds_nothing(client, worker) -> None:
    admin = admin_login(client)
    create_product(client, admin["token"], "SKU-PLENTY", stock=50)
    create_product(client, admin["token"], "SKU-SCARCE", stock=1)
    customer = register(client)
    pm = saved_card(customer["user"]["id"])
    r = place_order(client, customer["token"], [("SKU-PLENTY", 3), ("SKU-SCARCE", 2)], pm)
    assert r.status_code == 202
    done = wait_status(
        client, customer["token"], r.json()["data"]["order"]["id"], {"failed", "shipped"}
    )
    assert done["status"] == "failed"
    assert "SKU-SCARCE" in done["statusReason"]
    for sku, stock in (("SKU-PLENTY", 50), ("SKU-SCARCE", 1)):
        p = Product.objects(sku=sku).first()
        assert p.available == stock and p.holds == {} and p.sold == 0


def test_order_without_payment_method_waits_in_payment_pending(client, worker) -> None:
    admin = admin_login(client)
    create_product(client, admin["token"], "SKU-WAIT", stock=3)
    customer = register(client)
    r = place_order(client, customer["token"], [("SKU-WAIT", 1)])
    order_id = r.json()["data"]["order"]["id"]
    done = wait_status(client, customer["token"], order_id, {"payment_pending"})
    assert "paymentIntentId" not in done and intent_id_of(order_id)
    assert Product.objects(sku="SKU-WAIT").first().holds == {order_id: 1}


def test_idempotency_key_gives_one_order_and_rejects_other_body(client, worker) -> None:
    admin = admin_login(client)
    create_product(client, admin["token"], "SKU-IDEM", stock=10)
    customer = register(client)
    key = {"Idempotency-Key": "checkout-123"}
    first = place_order(client, customer["token"], [("SKU-IDEM", 1)], headers=key)
    again = place_order(client, customer["token"], [("SKU-IDEM", 1)], headers=key)
    other = place_order(client, customer["token"], [("SKU-IDEM", 2)], headers=key)
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["data"]["order"]["id"] == first.json()["data"]["order"]["id"]
    assert other.status_code == 409 and other.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    mine = client.get("/api/orders/my-orders", headers=auth(customer["token"])).json()
    assert mine["pagination"]["total"] == 1


def test_bad_items_are_400_naming_the_field(client) -> None:
    admin = admin_login(client)
    create_product(client, admin["token"], "SKU-REAL", stock=10)
    customer = register(client)
    token = customer["token"]
    unknown = place_order(client, token, [("SKU-NOPE", 1)])
    assert unknown.status_code == 404 and unknown.json()["code"] == "PRODUCT_NOT_FOUND"
    assert unknown.json()["errors"][0]["field"] == "items.0.sku"
    for qty in (0, 101):
        r = place_order(client, token, [("SKU-REAL", qty)])
        assert r.status_code == 400 and r.json()["errors"][0]["field"] == "items.0.quantity"
    priced = client.post(
        "/api/orders",
        json={
            "items": [{"sku": "SKU-REAL", "quantity": 1, "price": 1}],
            "shippingAddress": {
                "name": "a",
                "line1": "b",
                "city": "c",
                "postalCode": "12345",
                "country": "GB",
            },
        },
        headers=auth(token),
    )
    assert priced.status_code == 400
    assert {"field": "items.0.price", "message": "unknown field"} in priced.json()["errors"]
    inj = client.post(
        "/api/orders",
        json={"items": [{"sku": {"$gt": ""}, "quantity": 1}], "shippingAddress": {}},
        headers=auth(token),
    )
    assert inj.status_code == 400
    assert Product.objects(sku="SKU-REAL").first().available == 10
