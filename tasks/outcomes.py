"""How an order ends early (failed, cancelled) and how its compensations are enqueued."""

from __future__ import annotations

import structlog

from models.order import Order
from monitoring.metrics import COMPENSATIONS
from tasks.app import celery_app
from tasks.dispatch import CORRELATION_HEADER, enqueue_outbox
from workflows.lifecycle import compensations_for
from workflows.states import FINISHED, PAID_STATUSES, OrderStatus

log = structlog.get_logger(__name__)
_CAS_ATTEMPTS = 8


def enqueue_compensations(order: Order, previous: OrderStatus) -> tuple[str, ...]:
    """Undo what the order holds: payment first (refund or cancel intent), then stock."""
    names = compensations_for(
        previous,
        paid=previous in PAID_STATUSES or (order.paid_cents or 0) > 0,
        has_intent=bool(order.payment_intent_id),
        has_hold=True,  # releasing is a no-op when nothing is held
    )
    for name in names:
        COMPENSATIONS.labels(name).inc()
        celery_app.send_task(
            name,
            kwargs={"order_id": str(order.id)},
            headers={CORRELATION_HEADER: order.correlation_id},
        )
    return names


def end_order(
    order_id: str,
    to: OrderStatus,
    *,
    reason: str,
    actor: str,
    allowed_from: frozenset[OrderStatus] | None = None,
) -> tuple[Order | None, OrderStatus | None]:
    """Move an order to failed/cancelled with compare-and-set, then compensate.

    Returns (order after, status before) or (current order, None) when it could not move
    (already finished, or not in ``allowed_from``).
    """
    for _ in range(_CAS_ATTEMPTS):
        order = Order.get(order_id)
        if order is None:
            return None, None
        previous = order.status_enum
        if previous in FINISHED or previous == OrderStatus.SHIPPED:
            return order, None
        if allowed_from is not None and previous not in allowed_from:
            return order, None
        moved = Order.transition(order, to, actor=actor, reason=reason)
        if moved is not None:
            log.info("order_ended", status=to.value, reason=reason, previous=previous.value)
            enqueue_compensations(moved, previous)
            enqueue_outbox("orders", order_id)
            return moved, previous
    raise RuntimeError(f"order {order_id} kept changing while ending it")
