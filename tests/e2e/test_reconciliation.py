"""Beat reconciliation jobs against real data, a real worker and the real Stripe emulator."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from typer.testing import CliRunner

from gateways.stripe_gateway import get_gateway
from manage import cli
from models.order import Order, now_utc
from models.product import Product
from tasks.reconcile import (
    reconcile_leaked_holds,
    reconcile_orphan_intents,
    reconcile_payments,
    reconcile_stuck_orders,
    run_job,
)
from tests.factories import (
    CARD_3DS,
    admin_login,
    create_product,
    customer_with_card,
    intents_for,
    place_order,
    register,
    saved_card,
    wait_status,
)


def _age(order_id: str, seconds: int, *, created: bool = False) -> None:
    """Make an order look idle for `seconds` (what a lost message looks like later on)."""
    past = now_utc() - timedelta(seconds=seconds)
    fields = {"updated_at": past, **({"created_at": past} if created else {})}
    Order._get_collection().update_one({"_id": Order.get(order_id).id}, {"$set": fields})


def test_lost_chain_message_is_resumed_and_finishes(client, paused_worker) -> None:
    customer, pm = customer_with_card(client, "SKU-LOST")
    order_id = place_order(client, customer["token"], [("SKU-LOST", 1)], pm).json()["data"][
        "order"
    ]["id"]
    paused_worker.purge()  # the broker loses the chain message
    paused_worker.resume()
    time.sleep(0.5)
    assert Order.get(order_id).status == "pending"
    _age(order_id, 7200)
    counts = reconcile_stuck_orders()
    assert counts["resumed"] == 1
    done = wait_status(client, customer["token"], order_id, {"shipped"})
    assert done["status"] == "shipped"


def test_stuck_after_max_resumes_needs_attention(client, paused_worker) -> None:
    customer, pm = customer_with_card(client, "SKU-STUCK")
    order_id = place_order(client, customer["token"], [("SKU-STUCK", 1)], pm).json()["data"][
        "order"
    ]["id"]
    paused_worker.purge()
    Order._get_collection().update_one(
        {"_id": Order.get(order_id).id}, {"$set": {"resume_count": 3}}
    )
    _age(order_id, 7200)
    assert reconcile_stuck_orders()["flagged"] == 1
    order = Order.get(order_id)
    assert order.needs_attention and "stuck" in order.attention_reason
    assert reconcile_stuck_orders()["flagged"] == 0  # flagged once


def test_requires_action_past_window_times_out(client, worker) -> None:
    admin = admin_login(client)
    create_product(client, admin["token"], "SKU-TIMEOUT", stock=4)
    customer = register(client)
    pm = saved_card(customer["user"]["id"], CARD_3DS)
    order_id = place_order(client, customer["token"], [("SKU-TIMEOUT", 2)], pm).json()["data"][
        "order"
    ]["id"]
    wait_status(client, customer["token"], order_id, {"requires_action"})
    _age(order_id, 7200, created=True)
    counts = reconcile_payments()
    assert counts["timed_out"] == 1
    order = Order.get(order_id)
    assert (order.status, order.status_reason) == ("failed", "payment_timeout")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        product = Product.objects(sku="SKU-TIMEOUT").first()
        statuses = [i.status for i in intents_for(order_id)]
        if product.available == 4 and statuses == ["canceled"]:
            break
        time.sleep(0.2)
    assert product.available == 4 and product.holds == {}
    assert statuses == ["canceled"]


def test_two_concurrent_runs_act_once(client, paused_worker) -> None:
    customer, pm = customer_with_card(client, "SKU-TWOBEAT")
    order_id = place_order(client, customer["token"], [("SKU-TWOBEAT", 1)], pm).json()["data"][
        "order"
    ]["id"]
    paused_worker.purge()
    _age(order_id, 7200)
    results: list[dict] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        barrier.wait()
        results.append(run_job("stuck_orders", reconcile_stuck_orders))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    resumed = sum(r.get("resumed", 0) for r in results)
    assert resumed == 1, results
    assert Order.get(order_id).resume_count == 1


def test_orphan_intent_is_cancelled(client, worker) -> None:
    customer, pm = customer_with_card(client, "SKU-ORPHAN")
    order_id = place_order(client, customer["token"], [("SKU-ORPHAN", 1)], pm).json()["data"][
        "order"
    ]["id"]
    wait_status(client, customer["token"], order_id, {"shipped"})
    from models.user import User

    user = User.by_id(customer["user"]["id"])
    orphan = get_gateway().create_intent(
        order_id=order_id, amount_cents=999, currency="usd", customer_id=user.stripe_customer_id
    )
    counts = reconcile_orphan_intents()
    assert counts["cancelled"] >= 1
    assert get_gateway().retrieve_intent(orphan.id).status == "canceled"
    kept = get_gateway().retrieve_intent(Order.get(order_id).payment_intent_id)
    assert kept.status == "succeeded"


def test_leaked_hold_released_and_invariants(client, worker) -> None:
    customer, pm = customer_with_card(client, "SKU-LEAK", stock=5)
    order_id = place_order(client, customer["token"], [("SKU-LEAK", 1)], pm).json()["data"][
        "order"
    ]["id"]
    wait_status(client, customer["token"], order_id, {"shipped"})
    runner = CliRunner()
    ok = runner.invoke(cli, ["check-invariants"])
    assert ok.exit_code == 0, ok.output
    # A hand-made violation: a hold for a finished order, and stock that appeared from nowhere.
    Product._get_collection().update_one(
        {"_id": "SKU-LEAK"}, {"$set": {f"holds.{order_id}": 1}, "$inc": {"available": -1}}
    )
    bad = runner.invoke(cli, ["check-invariants"])
    assert bad.exit_code == 1 and "leaked_hold" in bad.output, bad.output
    assert reconcile_leaked_holds()["released"] == 1
    assert runner.invoke(cli, ["check-invariants"]).exit_code == 0
    Product._get_collection().update_one({"_id": "SKU-LEAK"}, {"$inc": {"available": 7}})
    drift = runner.invoke(cli, ["check-invariants"])
    assert drift.exit_code == 1 and "stock_conservation" in drift.output


def test_idempotency_keys_expire_after_ttl(client) -> None:
    from tasks.reconcile import expire_idempotency_keys

    customer, _ = customer_with_card(client, "SKU-IDEMTTL")
    key = {"Idempotency-Key": "old-checkout"}
    first = place_order(client, customer["token"], [("SKU-IDEMTTL", 1)], headers=key)
    order_id = first.json()["data"]["order"]["id"]
    assert expire_idempotency_keys()["expired"] == 0
    _age(order_id, 3 * 24 * 3600, created=True)
    assert expire_idempotency_keys()["expired"] == 1
    again = place_order(client, customer["token"], [("SKU-IDEMTTL", 2)], headers=key)
    assert again.status_code == 202
    assert again.json()["data"]["order"]["id"] != order_id
