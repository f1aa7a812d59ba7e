"""Manual capture (PAYMENT_CAPTURE=manual): the authorization taken at order is captured
when the order ships. Kept apart from payment_steps so ship_order can use it without an
import cycle."""

from __future__ import annotations

import structlog

from gateways.stripe_gateway import get_gateway
from models.order import Order
from tasks.events import flush_outbox
from tasks.outcomes import end_order
from workflows.errors import PermanentError
from workflows.events import EventType
from workflows.payments import payment_mismatch
from workflows.states import OrderStatus

log = structlog.get_logger(__name__)


def needs_capture(order: Order) -> bool:
    return bool(order.authorized_cents) and not order.paid_cents and bool(order.payment_intent_id)


def capture_for_shipping(order: Order, *, actor: str) -> Order | None:
    """Capture the order's authorization; the order to ship, or None if it must not ship.

    Transient Stripe errors propagate (the step retries; a capture that did happen is
    found on the retry). A capture refused for good (authorization canceled or expired)
    ends the order ``failed`` with its compensations. A capture of another amount than the
    total is recorded and flagged, and the order is not shipped.
    """
    oid = str(order.id)
    try:
        intent = get_gateway().capture_intent(order.payment_intent_id)
    except PermanentError as exc:
        end_order(
            oid, OrderStatus.FAILED, reason=f"payment capture failed: {exc.message}", actor=actor
        )
        return None
    mismatch = payment_mismatch(
        order.total_cents, order.currency, intent.amount_received, intent.currency
    )
    current: Order | None = order
    for _ in range(5):
        if current is None or current.status_enum != OrderStatus.CONFIRMED:
            return None
        moved = Order.update_fields(
            current,
            actor=actor,
            fields={"paid_cents": intent.amount_received},
            events=(EventType.PAYMENT_PROCESSED,),
            event_data={
                "paymentIntentId": intent.id,
                "amountCents": intent.amount_received,
                "captured": True,
            },
            note="payment captured",
        )
        if moved is not None:
            break
        current = Order.get(oid)
    else:
        return None
    flush_outbox("orders", oid, moved.outbox)
    if mismatch is not None:
        log.error("capture_amount_mismatch", intent_id=intent.id, detail=mismatch)
        if Order.flag_attention(oid, mismatch, actor):
            flush_outbox("orders", oid)
        return None
    return Order.get(oid)
