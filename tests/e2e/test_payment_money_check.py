"""Money is checked, never assumed: a succeeded intent that took another amount or
currency than the order's total leaves the order unpaid and flagged, naming both amounts."""

from __future__ import annotations

import time

from tests.factories import (
    admin_login,
    auth,
    create_product,
    intent_id_of,
    place_order,
    register,
    saved_card,
    stripe_client,
    wait_status,
)


def test_intent_amount_changed_in_stripe_is_flagged_not_paid(client, worker) -> None:
    admin = admin_login(client)
    create_product(client, admin["token"], "SKU-MONEY", price=2500, stock=5)
    customer = register(client)
    h = auth(customer["token"])
    order = place_order(client, customer["token"], [("SKU-MONEY", 1)]).json()["data"]["order"]
    pending = wait_status(client, customer["token"], order["id"], {"payment_pending"})
    total = pending["totalCents"]
    # Someone edits the intent outside our code (the Dashboard, a bug): it asks for less.
    stripe_client().v1.payment_intents.update(intent_id_of(pending["id"]), {"amount": total - 1})
    pm = saved_card(customer["user"]["id"])
    r = client.post(
        "/api/payments/confirm", json={"orderId": order["id"], "paymentMethodId": pm}, headers=h
    )
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        now = client.get(f"/api/orders/{order['id']}", headers=auth(admin["token"])).json()
        now = now["data"]["order"]
        if now["needsAttention"]:
            break
        time.sleep(0.2)
    assert now["needsAttention"] is True
    assert now["attentionReason"] == (
        f"payment amount mismatch: received {total - 1} USD, order total {total} USD"
    )
    assert now["status"] == "payment_pending" and now["paidCents"] == 0
    intent = stripe_client().v1.payment_intents.retrieve(intent_id_of(pending["id"]))
    assert intent.status == "succeeded"  # the money was taken: an operator decides
    # The payments sweep sees the same intent and still does not mark it paid.
    from tasks.reconcile import reconcile_payments

    reconcile_payments()
    again = client.get(f"/api/orders/{order['id']}", headers=auth(admin["token"])).json()
    assert again["data"]["order"]["status"] == "payment_pending"
