"""System invariants: what must hold whatever crashed, restarted or arrived twice."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

from core.db import get_db
from core.settings import get_settings
from gateways.stripe_gateway import get_gateway
from models.order import Order, now_utc
from models.product import Product
from tasks.reconcile import LEAK_STATUSES
from workflows.payments import money_kept
from workflows.states import FINISHED, OrderStatus


@dataclass(frozen=True)
class Violation:
    check: str
    subject: str
    detail: str


def stock_conservation() -> list[Violation]:
    return [
        Violation(
            "stock_conservation",
            v["sku"],
            f"stocked {v['stockedTotal']} + returned {v['returned']} != available"
            f" {v['available']} + held {v['held']} + sold {v['sold']}",
        )
        for v in Product.conservation_violations()
    ]


def one_succeeded_intent_per_order() -> list[Violation]:
    succeeded = Counter(
        i.order_id
        for i in get_gateway().list_intents(limit=100_000)
        if i.order_id and i.status == "succeeded"
    )
    return [
        Violation("single_charge", oid, f"{n} succeeded intents")
        for oid, n in succeeded.items()
        if n > 1
    ]


def no_hold_on_finished_order() -> list[Violation]:
    out = []
    for product in Product.objects(holds__ne={}).only("sku", "holds"):
        for order_id in product.holds or {}:
            order = Order.get(order_id)
            if order is None or order.status_enum in LEAK_STATUSES:
                status = order.status if order else "missing"
                out.append(Violation("leaked_hold", product.sku, f"held for {order_id} ({status})"))
    return out


def empty_outboxes(grace_seconds: float = 30) -> list[Violation]:
    edge = now_utc() - timedelta(seconds=grace_seconds)
    out = []
    db = get_db()
    for name in ("orders", "products", "users"):
        query = {"outbox.0": {"$exists": True}, "outbox.occurredAt": {"$lte": edge}}
        for doc in db[name].find(query, {"_id": 1, "outbox": 1}).limit(50):
            out.append(
                Violation(
                    "outbox_pending",
                    f"{name}/{doc['_id']}",
                    f"{len(doc.get('outbox') or [])} undispatched event(s)",
                )
            )
    return out


def orders_progressing() -> list[Violation]:
    settings = get_settings()
    edge = now_utc() - timedelta(seconds=settings.stuck_order_seconds)
    window_edge = now_utc() - timedelta(seconds=settings.payment_window_seconds)
    out = []
    unfinished = Order.objects(status__nin=[s.value for s in FINISHED], updated_at__lte=edge)
    for order in unfinished.only("id", "status", "updated_at", "created_at", "payment_method_id"):
        waiting = order.status_enum in (OrderStatus.REQUIRES_ACTION, OrderStatus.PAYMENT_PENDING)
        if waiting and order.created_at > window_edge:
            continue  # waiting on the customer, still inside the payment window
        if order.status_enum == OrderStatus.SHIPPED:
            continue  # the carrier has it; delivery is a separate clock
        out.append(
            Violation(
                "stuck_order", str(order.id), f"{order.status} since {order.updated_at.isoformat()}"
            )
        )
    return out


def no_money_kept_for_unshipped_orders() -> list[Violation]:
    """A succeeded, unrefunded intent whose order ended unshipped (or a second charge)."""
    out = []
    for intent in get_gateway().list_intents(limit=100_000):
        if not intent.order_id or intent.status != "succeeded":
            continue
        order = Order.get(intent.order_id)
        if order is not None and money_kept(
            order.status,
            intent_status=intent.status,
            received_cents=intent.amount_received,
            refunded_cents=intent.refunded_cents,
            is_orders_intent=intent.id == order.payment_intent_id,
        ):
            left = intent.amount_received - intent.refunded_cents
            out.append(
                Violation(
                    "money_kept", intent.order_id, f"{intent.id} keeps {left} ({order.status})"
                )
            )
    return out


CHECKS = {
    "stock_conservation": stock_conservation,
    "single_charge": one_succeeded_intent_per_order,
    "leaked_hold": no_hold_on_finished_order,
    "outbox_pending": empty_outboxes,
    "stuck_order": orders_progressing,
    "money_kept": no_money_kept_for_unshipped_orders,
}


def check_all() -> dict[str, list[Violation]]:
    return {name: fn() for name, fn in CHECKS.items()}
