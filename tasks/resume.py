"""Resume: rebuild an order's remaining chain from Mongo, the source of truth."""

from __future__ import annotations

import structlog

from models.order import Order, now_utc
from monitoring.tracing import order_span
from tasks.dispatch import enqueue_chain, enqueue_outbox
from workflows.events import EventType
from workflows.lifecycle import remaining_steps
from workflows.states import OrderStatus

log = structlog.get_logger(__name__)


def resume_order(order_id: str, *, actor: str = "system") -> list[str]:
    """Enqueue what is left of the order's chain; every step skips work already done.

    A paused 3-D Secure order is not resumed into a confirm (the customer must act);
    payment reconciliation moves it on once Stripe says the intent succeeded.
    """
    order = Order.get(order_id)
    if order is None:
        return []
    status = order.status_enum
    if status == OrderStatus.REQUIRES_ACTION or not remaining_steps(status):
        return []
    Order.push_events(
        order_id, (EventType.ORDER_RESUMED,), {"actor": actor, "status": status.value}
    )
    # Touch updated_at: the stuck-order sweep then waits a whole threshold before trying
    # again, instead of resuming the same order on every beat tick.
    Order._get_collection().update_one(
        {"_id": order.id}, {"$inc": {"resume_count": 1}, "$set": {"updated_at": now_utc()}}
    )
    # The resumed chain joins the order's own trace (linked to the sweep's or admin's).
    with order_span("order.resume", order.trace_parent, order_id=order_id, actor=actor):
        names = enqueue_chain(order_id, order.correlation_id, status)
        enqueue_outbox("orders", order_id)
    log.info("order_resumed", order_id=order_id, steps=names, actor=actor)
    return names
