"""No oversell, idempotent steps, killed workers, transient failures, cancel at every status."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from models.order import Order
from models.product import Product
from tasks import dispatch
from tasks.order_steps import reserve_inventory, ship_order
from tasks.payment_steps import confirm_payment, create_payment_intent
from tests.conftest import Worker
from tests.factories import (
    CARD_3DS,
    admin_login,
    auth,
    create_product,
    customer_with_card,
    intents_for,
    place_order,
    register,
    saved_card,
    wait_status,
)


def _snapshot(order_id: str, sku: str) -> tuple:
    order = Order.get(order_id)
    product = Product.objects(sku=sku).first()
    return (
        order.status,
        order.version,
        order.payment_intent_id,
        product.available,
        dict(product.holds),
        product.sold,
    )


def test_no_oversell_50_concurrent_orders_for_10_units(client, worker) -> None:
    admin = admin_login(client)
    create_product(client, admin["token"], "SKU-HOT", price=1000, stock=10)
    customers = [register(client) for _ in range(10)]
    cards = {c["user"]["id"]: saved_card(c["user"]["id"]) for c in customers}

    def buy(n: int) -> str:
        c = customers[n % len(customers)]
        r = place_order(client, c["token"], [("SKU-HOT", 1)], cards[c["user"]["id"]])
        assert r.status_code == 202, r.text
        return r.json()["data"]["order"]["id"]

    with ThreadPoolExecutor(max_workers=10) as pool:
        ids = list(pool.map(buy, range(50)))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        statuses = [o.status for o in Order.objects(id__in=ids).only("status")]
        if all(s in ("shipped", "failed") for s in statuses):
            break
        time.sleep(0.5)
    assert statuses.count("shipped") == 10, statuses
    assert statuses.count("failed") == 40
    product = Product.objects(sku="SKU-HOT").first()
    assert (product.available, product.holds, product.sold) == (0, {}, 10)
    assert Product.conservation_violations() == []


def test_each_step_twice_changes_nothing_the_second_time(client, paused_worker) -> None:
    customer, pm = customer_with_card(client, "SKU-TWICE")
    order_id = place_order(client, customer["token"], [("SKU-TWICE", 2)], pm).json()["data"][
        "order"
    ]["id"]
    paused_worker.purge()  # the enqueued chain is dropped: this test runs the steps itself
    for step in (reserve_inventory, create_payment_intent, confirm_payment, ship_order):
        step(order_id=order_id)
        first = _snapshot(order_id, "SKU-TWICE")
        step(order_id=order_id)
        assert _snapshot(order_id, "SKU-TWICE") == first, step.name
    assert first[0] == "shipped" and first[3:] == (3, {}, 2)
    # resume after everything ran: nothing left to enqueue, nothing charged again
    assert dispatch.resume(order_id) == []
    assert [i.status for i in intents_for(order_id)] == ["succeeded"]


def test_resume_after_steps_ran_does_not_charge_twice(client, worker) -> None:
    customer, pm = customer_with_card(client, "SKU-RES")
    order_id = place_order(client, customer["token"], [("SKU-RES", 1)], pm).json()["data"]["order"][
        "id"
    ]
    # race the original chain with two resumes
    dispatch.resume(order_id)
    dispatch.resume(order_id)
    wait_status(client, customer["token"], order_id, {"shipped"})
    time.sleep(1.5)  # let the duplicate chains finish their no-op steps
    succeeded = [i for i in intents_for(order_id) if i.status == "succeeded"]
    assert len(succeeded) == 1
    assert Product.objects(sku="SKU-RES").first().sold == 1


def test_worker_killed_mid_chain_then_resumed(client, paused_worker) -> None:
    customer, pm = customer_with_card(client, "SKU-KILL")
    order_id = place_order(client, customer["token"], [("SKU-KILL", 1)], pm).json()["data"][
        "order"
    ]["id"]
    private = Worker("worker-killed", concurrency=1).start()
    try:
        wait_status(
            client,
            customer["token"],
            order_id,
            {"reserved", "payment_pending", "confirmed", "shipped"},
            timeout=30,
        )
        private.kill()  # SIGKILL: no shutdown, unacked work dies with it
    finally:
        private.stop()
    status = Order.get(order_id).status
    replacement = Worker("worker-replacement", concurrency=1).start()
    try:
        dispatch.resume(order_id)
        done = wait_status(client, customer["token"], order_id, {"shipped"}, timeout=60)
    finally:
        replacement.stop()
    assert done["status"] == "shipped", status
    product = Product.objects(sku="SKU-KILL").first()
    assert (product.available, product.holds, product.sold) == (4, {}, 1)
    assert len([i for i in intents_for(order_id) if i.status == "succeeded"]) == 1


def test_transient_stripe_outage_retries_then_succeeds(client, worker, stripe_server) -> None:
    customer, pm = customer_with_card(client, "SKU-FLAKY")
    os.kill(stripe_server["proc"].pid, signal.SIGSTOP)  # the emulator freezes: timeouts
    try:
        order_id = place_order(client, customer["token"], [("SKU-FLAKY", 1)], pm).json()["data"][
            "order"
        ]["id"]
        time.sleep(6)
    finally:
        os.kill(stripe_server["proc"].pid, signal.SIGCONT)
    done = wait_status(client, customer["token"], order_id, {"shipped", "failed"}, timeout=90)
    assert done["status"] == "shipped", done["statusReason"]
    assert "order.step.retrying" in worker.log() or "step_retrying" in worker.log()


@pytest.mark.parametrize(
    "target", ["pending", "reserved", "payment_pending", "requires_action", "confirmed"]
)
def test_cancel_at_each_status_restores_stock_and_voids_payment(client, paused_worker, target):
    admin = admin_login(client)
    create_product(client, admin["token"], "SKU-CXL", stock=5)
    customer = register(client)
    pm = saved_card(
        customer["user"]["id"], CARD_3DS if target == "requires_action" else "4242424242424242"
    )
    order_id = place_order(client, customer["token"], [("SKU-CXL", 2)], pm).json()["data"]["order"][
        "id"
    ]
    paused_worker.purge()
    steps = {
        "reserved": [reserve_inventory],
        "payment_pending": [reserve_inventory, create_payment_intent],
        "requires_action": [reserve_inventory, create_payment_intent, confirm_payment],
        "confirmed": [reserve_inventory, create_payment_intent, confirm_payment],
    }
    for step in steps.get(target, []):
        step(order_id=order_id)
    assert Order.get(order_id).status == target
    r = client.delete(
        f"/api/orders/{order_id}?reason=changed%20my%20mind", headers=auth(customer["token"])
    )
    assert r.status_code == 202, r.text
    assert r.json()["data"]["order"]["status"] == "cancelled"
    paused_worker.resume()  # compensations run now
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        product = Product.objects(sku="SKU-CXL").first()
        intents = intents_for(order_id)
        voided = all(
            i.status == "canceled"
            or (i.status == "succeeded" and Order.get(order_id).refunded_cents)
            for i in intents
        )
        if product.available == 5 and not product.holds and voided:
            break
        time.sleep(0.2)
    assert (product.available, product.holds, product.sold) == (5, {}, 0)
    assert voided, [(i.id, i.status) for i in intents]
    if target == "confirmed":
        assert Order.get(order_id).refunded_cents == Order.get(order_id).paid_cents > 0
    again = client.delete(f"/api/orders/{order_id}?reason=again", headers=auth(customer["token"]))
    assert again.status_code == 409


def test_two_intent_runs_store_one_intent_and_cancel_the_other(client, paused_worker) -> None:
    from tasks.payment_steps import create_intent, store_intent_and_move

    customer, pm = customer_with_card(client, "SKU-2INT")
    first_id, second_id = (
        place_order(client, customer["token"], [("SKU-2INT", 1)], pm).json()["data"]["order"]["id"]
        for _ in range(2)
    )
    paused_worker.purge()  # this test runs the steps itself
    reserve_inventory(order_id=first_id)
    reserve_inventory(order_id=second_id)

    # Two runs of create_payment_intent read the same reserved order and each create an
    # intent (localstripe ignores Stripe's idempotency key, so they differ).
    loaded = Order.get(first_id)
    mine, theirs = create_intent(loaded), create_intent(loaded)
    assert mine.id != theirs.id
    won = store_intent_and_move(loaded, mine, "test:first")
    lost = store_intent_and_move(loaded, theirs, "test:second")
    assert won is not None and won.status == "payment_pending"
    assert lost is None
    order = Order.get(first_id)
    assert (order.status, order.payment_intent_id) == ("payment_pending", mine.id)
    by_id = {i.id: i.status for i in intents_for(first_id)}
    assert by_id[theirs.id] == "canceled" and by_id[mine.id] != "canceled"

    # An order cancelled while its intent was being created keeps no intent at all.
    loaded = Order.get(second_id)
    late = create_intent(loaded)
    r = client.request(
        "DELETE",
        f"/api/orders/{second_id}",
        json={"reason": "changed my mind"},
        headers=auth(customer["token"]),
    )
    assert r.status_code == 202, r.text
    assert store_intent_and_move(loaded, late, "test:late") is None
    assert Order.get(second_id).payment_intent_id is None
    assert {i.id: i.status for i in intents_for(second_id)} == {late.id: "canceled"}


def test_a_refused_publish_leaves_the_order_to_the_sweep_not_an_operator(
    client, paused_worker
) -> None:
    from kombu.exceptions import OperationalError

    customer, pm = customer_with_card(client, "SKU-PUB")
    order_id = place_order(client, customer["token"], [("SKU-PUB", 1)], pm).json()["data"]["order"][
        "id"
    ]
    paused_worker.purge()
    reserve_inventory(order_id=order_id)
    # The step's work is done, then the broker refuses the chain's next message.
    refused = OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
    reserve_inventory.on_failure(refused, "task-1", (), {"order_id": order_id}, None)
    order = Order.get(order_id)
    assert (order.status, order.needs_attention) == ("reserved", False)
    # Any other failure that escapes a step is an operator's problem.
    reserve_inventory.on_failure(RuntimeError("boom"), "task-2", (), {"order_id": order_id}, None)
    assert Order.get(order_id).needs_attention is True
