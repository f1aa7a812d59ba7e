"""Returns end to end: delivered → request → approve → receive (twice) → restocked and
refunded once, through the real worker and the Stripe emulator."""

from __future__ import annotations

from models.product import Product
from tasks.invariants import check_all
from tests.factories import (
    admin_login,
    auth,
    create_product,
    intents_for,
    place_order,
    register,
    saved_card,
    wait_status,
)
from tests.support.events import wait_until


def _delivered_order(
    client, admin_token: str, customer: dict, lines: list[tuple[str, int]]
) -> dict:
    card = saved_card(customer["user"]["id"])
    r = place_order(client, customer["token"], lines, card)
    assert r.status_code == 202, r.text
    order_id = r.json()["data"]["order"]["id"]
    wait_status(client, customer["token"], order_id, {"shipped"})
    moved = client.patch(
        f"/api/orders/{order_id}", json={"status": "delivered"}, headers=auth(admin_token)
    )
    assert moved.status_code == 200, moved.text
    return moved.json()["data"]["order"]


def test_return_request_approve_receive_twice_restocks_and_refunds_once(client, worker) -> None:
    admin = admin_login(client)
    create_product(client, admin["token"], "RET-A", price=2500, stock=10)
    create_product(client, admin["token"], "RET-B", price=999, stock=10)
    customer = register(client)
    order = _delivered_order(client, admin["token"], customer, [("RET-A", 2), ("RET-B", 1)])
    oid = order["id"]

    too_many = client.post(
        f"/api/orders/{oid}/returns",
        json={"lines": [{"sku": "RET-A", "quantity": 3}], "reason": "too big"},
        headers=auth(customer["token"]),
    )
    assert too_many.status_code == 400
    assert too_many.json()["errors"][0]["field"] == "lines.0.quantity"

    asked = client.post(
        f"/api/orders/{oid}/returns",
        json={"lines": [{"sku": "RET-A", "quantity": 1}], "reason": "too big"},
        headers=auth(customer["token"]),
    )
    assert asked.status_code == 201, asked.text
    ret = asked.json()["data"]["return"]
    assert ret["status"] == "requested"
    rid = ret["id"]

    # Customers cannot decide; receiving before approval is refused.
    assert (
        client.post(f"/api/orders/{oid}/returns/{rid}/approve", headers=auth(customer["token"]))
    ).status_code == 403
    early = client.post(f"/api/orders/{oid}/returns/{rid}/receive", headers=auth(admin["token"]))
    assert early.status_code == 409

    approved = client.post(
        f"/api/orders/{oid}/returns/{rid}/approve", json={}, headers=auth(admin["token"])
    )
    assert approved.status_code == 200, approved.text
    # One unit of 2500 plus its share of the tax (8.25 %, half up), no shipping.
    expected = 2500 + (2500 * order["taxCents"] * 2 + order["subtotalCents"]) // (
        2 * order["subtotalCents"]
    )
    assert approved.json()["data"]["return"]["refundCents"] == expected

    before = Product.objects(sku="RET-A").first()
    first = client.post(f"/api/orders/{oid}/returns/{rid}/receive", headers=auth(admin["token"]))
    second = client.post(f"/api/orders/{oid}/returns/{rid}/receive", headers=auth(admin["token"]))
    assert first.status_code == 202, first.text
    assert second.status_code == 200, second.text

    def refunded():
        got = client.get(f"/api/orders/{oid}", headers=auth(customer["token"])).json()
        return (
            got["data"]["order"]
            if got["data"]["order"]["returns"][0]["status"] == "refunded"
            else None
        )

    final = wait_until(refunded, timeout=30)
    assert final["status"] == "delivered"
    assert final["refundedCents"] == expected
    after = Product.objects(sku="RET-A").first()
    assert after.available == before.available + 1
    assert after.returned == before.returned + 1
    assert after.sold == before.sold  # sold counts what shipped; returned what came back

    # Stripe holds exactly one refund of that amount for the order's intent.
    from tests.factories import stripe_client

    intent = intents_for(oid)[0]
    refunds = stripe_client().v1.refunds.list({"payment_intent": intent.id}).data
    assert [r.amount for r in refunds] == [expected]

    # A third receive after the refund changes nothing.
    third = client.post(f"/api/orders/{oid}/returns/{rid}/receive", headers=auth(admin["token"]))
    assert third.status_code == 200
    assert Product.objects(sku="RET-A").first().available == after.available

    timeline = client.get(f"/api/orders/{oid}/timeline", headers=auth(customer["token"])).json()
    types = [e["type"] for e in timeline["data"]["timeline"]]
    for kind in ("requested", "approved", "received", "refunded"):
        assert types.count(f"order.return.{kind}") == 1, (kind, types)
    assert not any(check_all().values()), check_all()

    # Only one more unit of RET-A is returnable now, and the admin list shows the return.
    rows = client.get("/api/returns?status=refunded", headers=auth(admin["token"])).json()
    assert [r["id"] for r in rows["data"]["returns"]] == [rid]


def test_returns_only_for_delivered_orders_and_rejection_needs_a_reason(client, worker) -> None:
    admin = admin_login(client)
    create_product(client, admin["token"], "RET-C", price=500, stock=5)
    customer = register(client)
    card = saved_card(customer["user"]["id"])
    r = place_order(client, customer["token"], [("RET-C", 1)], card)
    oid = r.json()["data"]["order"]["id"]
    wait_status(client, customer["token"], oid, {"shipped"})
    not_yet = client.post(
        f"/api/orders/{oid}/returns",
        json={"lines": [{"sku": "RET-C", "quantity": 1}], "reason": "x"},
        headers=auth(customer["token"]),
    )
    assert not_yet.status_code == 409
    assert not_yet.json()["code"] == "ORDER_NOT_RETURNABLE"

    client.patch(f"/api/orders/{oid}", json={"status": "delivered"}, headers=auth(admin["token"]))
    rid = client.post(
        f"/api/orders/{oid}/returns",
        json={"lines": [{"sku": "RET-C", "quantity": 1}], "reason": "broken"},
        headers=auth(customer["token"]),
    ).json()["data"]["return"]["id"]
    no_reason = client.post(
        f"/api/orders/{oid}/returns/{rid}/reject", json={}, headers=auth(admin["token"])
    )
    assert no_reason.status_code == 400
    rejected = client.post(
        f"/api/orders/{oid}/returns/{rid}/reject",
        json={"reason": "outside policy"},
        headers=auth(admin["token"]),
    )
    assert rejected.status_code == 200
    assert rejected.json()["data"]["return"]["decisionReason"] == "outside policy"
    # A rejected return frees its units for another request.
    again = client.post(
        f"/api/orders/{oid}/returns",
        json={"lines": [{"sku": "RET-C", "quantity": 1}], "reason": "broken, photo attached"},
        headers=auth(customer["token"]),
    )
    assert again.status_code == 201
    other = register(client)
    assert client.get(f"/api/orders/{oid}/returns", headers=auth(other["token"])).status_code == 404
