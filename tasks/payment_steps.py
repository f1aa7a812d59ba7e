"""Payment steps and compensations: create/confirm the intent, cancel, refund, settle.

Mongo is the truth: the intent id is stored on the order once (first writer wins), an
intent created by a losing duplicate run is cancelled on the spot, and every decision is
taken from the intent's *current* state in Stripe, so webhooks, resumes and retries that
arrive twice or out of order all land in the same place.
"""

from __future__ import annotations

import time
from typing import Any

import structlog

from gateways.stripe_gateway import (
    IntentInfo,
    NotFoundInStripe,
    PaymentMethodNotOwned,
    get_gateway,
)
from models.order import Order
from models.user import User
from monitoring.metrics import STEP_SECONDS
from tasks.app import celery_app
from tasks.base import OrderTask, stop_chain
from tasks.dispatch import enqueue_chain
from tasks.events import flush_outbox
from tasks.order_steps import load_for_step
from tasks.outcomes import end_order
from workflows.errors import PermanentError, TransientError
from workflows.events import EventType
from workflows.payments import payment_mismatch
from workflows.states import PAYABLE, TERMINAL, OrderStatus

log = structlog.get_logger(__name__)


def ensure_customer(user: User) -> str:
    """The user's Stripe customer, created on first need and stored once."""
    return user.ensure_stripe_customer(get_gateway().ensure_customer)


def claim_payment_method(customer_id: str, pm_id: str) -> None:
    """Make ``pm_id`` the customer's before anything is charged with it.

    A browser-made method (Stripe.js, no customer yet) is attached once; one already this
    customer's is used as is; one owned by another customer, or that does not exist, is
    refused as *absent* (``payment_method_not_found``): never charge someone else's card,
    and never tell a caller that a given card id exists elsewhere. Transient Stripe errors
    propagate (the step retries).
    """
    try:
        get_gateway().attach_payment_method(customer_id, pm_id)
    except (PaymentMethodNotOwned, NotFoundInStripe) as exc:
        raise PermanentError("payment method not found", code="payment_method_not_found") from exc


def create_intent(order: Order) -> IntentInfo:
    """Create a PaymentIntent for the order's server-computed total (not stored yet)."""
    user = User.by_id(order.user_id)
    if user is None:
        raise PermanentError("customer account not found", code="user_missing")
    customer_id = ensure_customer(user)
    if order.payment_method_id:
        claim_payment_method(customer_id, order.payment_method_id)
    return get_gateway().create_intent(
        order_id=str(order.id),
        amount_cents=order.total_cents,
        currency=order.currency,
        customer_id=customer_id,
        payment_method_id=order.payment_method_id,
    )


def store_intent_and_move(order: Order, created: IntentInfo | None, actor: str) -> Order | None:
    """reserved → payment_pending, storing ``created`` in the same compare-and-set.

    The intent is stored only where none is yet (the first writer wins). An intent we
    created that did not end up on the order (a duplicate run stored its own first, or the
    order ended meanwhile) is cancelled on the spot: it must never be charged.
    """
    current, moved = order, None
    for _ in range(5):
        stored = current.payment_intent_id
        if stored:
            intent_id, fields = stored, {}
        elif created is not None:
            intent_id = created.id
            fields = {"payment_intent_id": created.id, "client_secret": created.client_secret}
        else:
            break
        moved = Order.transition(
            current,
            OrderStatus.PAYMENT_PENDING,
            actor=actor,
            fields=fields,
            match={"payment_intent_id": stored},
            event_data={"paymentIntentId": intent_id, "amountCents": current.total_cents},
        )
        if moved is not None:
            break
        reread = Order.get(str(order.id))  # moved meanwhile: an edit, a duplicate, a cancel
        if reread is None or reread.status_enum != OrderStatus.RESERVED:
            break
        current = reread
    if created is not None:
        latest = moved or Order.get(str(order.id))
        if latest is None or latest.payment_intent_id != created.id:
            get_gateway().cancel_intent(created.id)
    return moved


@celery_app.task(bind=True, base=OrderTask, name="payments.create_payment_intent")
def create_payment_intent(self: OrderTask, order_id: str) -> str:
    """Create (once) the PaymentIntent for the server-computed total; → payment_pending."""
    started = time.perf_counter()
    order = load_for_step(self, order_id, OrderStatus.RESERVED)
    if order is None:
        return "skipped"
    try:
        created = None if order.payment_intent_id else create_intent(order)
    except PermanentError as exc:
        end_order(order_id, OrderStatus.FAILED, reason=exc.message, actor=f"task:{self.name}")
        stop_chain(self)
        return exc.code
    moved = store_intent_and_move(order, created, f"task:{self.name}")
    if moved is None:
        return "conflict"
    flush_outbox("orders", order_id, moved.outbox)
    if not moved.payment_method_id:
        stop_chain(self)  # waits for /api/payments/confirm or the browser
    STEP_SECONDS.labels("create_payment_intent", "ok").observe(time.perf_counter() - started)
    return "payment_pending"


def settle_from_intent(order: Order, intent: IntentInfo, *, actor: str) -> Order | None:
    """Move a payable order to what its intent says now. Returns the order after, if moved.

    succeeded → confirmed; requires_action → requires_action (3-D Secure);
    declined / canceled → failed with the decline reason, compensations enqueued.
    """
    status = order.status_enum
    if status not in PAYABLE:
        return None
    if intent.status == "succeeded":
        mismatch = payment_mismatch(
            order.total_cents, order.currency, intent.amount_received, intent.currency
        )
        if mismatch is not None:
            # Never marked paid on an assumption: an operator compares and decides.
            log.error("payment_amount_mismatch", intent_id=intent.id, detail=mismatch)
            if Order.flag_attention(str(order.id), mismatch, actor):
                flush_outbox("orders", str(order.id))
            return None
        return Order.transition_from(
            str(order.id),
            PAYABLE,
            OrderStatus.CONFIRMED,
            loaded=order,
            actor=actor,
            fields={"paid_cents": intent.amount_received, "next_action": None},
            event_data={"paymentIntentId": intent.id, "amountCents": intent.amount_received},
        )
    if intent.status == "requires_action":
        if status == OrderStatus.REQUIRES_ACTION:
            return None
        return Order.transition_from(
            str(order.id),
            frozenset({OrderStatus.PAYMENT_PENDING}),
            OrderStatus.REQUIRES_ACTION,
            loaded=order,
            actor=actor,
            reason="3-D Secure authentication required",
            fields={"client_secret": intent.client_secret, "next_action": intent.next_action_type},
            event_data={"paymentIntentId": intent.id, "nextAction": intent.next_action_type},
        )
    declined = intent.status == "requires_payment_method" and (
        intent.last_error_code or intent.decline_code
    )
    if declined or intent.status == "canceled":
        reason = (
            f"payment declined: {intent.decline_code or intent.last_error_code}"
            + (f" ({intent.last_error_message})" if intent.last_error_message else "")
            if declined
            else "payment intent canceled"
        )
        moved, _ = end_order(str(order.id), OrderStatus.FAILED, reason=reason, actor=actor)
        return moved
    return None


@celery_app.task(bind=True, base=OrderTask, name="payments.confirm_payment")
def confirm_payment(self: OrderTask, order_id: str) -> str:
    """Confirm the stored intent with the order's payment method."""
    started = time.perf_counter()
    order = load_for_step(self, order_id, OrderStatus.PAYMENT_PENDING)
    if order is None:
        return "skipped"
    if not order.payment_method_id:
        stop_chain(self)
        return "waiting_for_payment_method"
    gateway = get_gateway()
    intent = gateway.retrieve_intent(order.payment_intent_id)
    if intent.status != "succeeded":
        if intent.payment_method != order.payment_method_id and intent.status in (
            "requires_payment_method",
            "requires_confirmation",
        ):
            intent = gateway.set_intent_payment_method(intent.id, order.payment_method_id)
        if intent.status in ("requires_confirmation", "requires_payment_method"):
            attempt = f"{order.payment_method_id}:v{order.version}"
            intent = gateway.confirm_intent(intent.id, attempt=attempt)
    if intent.status == "processing":
        raise TransientError("payment still processing")
    moved = settle_from_intent(order, intent, actor=f"task:{self.name}")
    if moved is not None:
        flush_outbox("orders", order_id, moved.outbox)
    if moved is None or moved.status_enum != OrderStatus.CONFIRMED:
        stop_chain(self)
    STEP_SECONDS.labels("confirm_payment", intent.status).observe(time.perf_counter() - started)
    return intent.status


@celery_app.task(bind=True, base=OrderTask, name="payments.cancel_intent")
def cancel_intent(self: OrderTask, order_id: str) -> str:
    """Compensation: void the order's intent; if it was charged meanwhile, refund it."""
    order = Order.get(order_id)
    if order is None or not order.payment_intent_id:
        return "no_intent"
    intent = get_gateway().cancel_intent(order.payment_intent_id)
    if intent.status == "succeeded":
        return refund_order(order, amount_cents=None, key="compensation", actor=self.name)
    Order.push_events(order_id, (EventType.ORDER_COMPENSATED,), {"compensation": "cancel_intent"})
    flush_outbox("orders", order_id)
    return intent.status


def refund_order(
    order: Order,
    *,
    amount_cents: int | None,
    key: str,
    actor: str,
    final_status: OrderStatus | None = None,
    reason: str | None = None,
) -> str:
    """Refund (part of) what was charged, once per key, and record it on the order."""
    if not order.payment_intent_id:
        return "no_intent"
    refund = get_gateway().refund(
        intent_id=order.payment_intent_id,
        amount_cents=amount_cents,
        idempotency_key=f"order:{order.id}:refund:{key}",
    )
    record: dict[str, Any] = {"id": refund.id, "amountCents": refund.amount, "key": key}
    coll = Order._get_collection()
    coll.update_one(
        {"_id": order.id, "refunds.id": {"$ne": refund.id}},
        {"$push": {"refunds": record}, "$inc": {"refunded_cents": refund.amount}},
    )
    Order.push_events(
        str(order.id),
        (EventType.PAYMENT_REFUNDED,),
        {"refundId": refund.id, "amountCents": refund.amount, "actor": actor, "reason": reason},
    )
    if final_status is not None:
        current = Order.get(str(order.id))
        if current is not None and current.status_enum not in TERMINAL:
            before = current.status_enum
            moved = Order.transition(current, final_status, actor=actor, reason=reason)
            if moved is not None and before == OrderStatus.CONFIRMED:
                # Refunded before shipping: the held stock goes back on sale.
                celery_app.send_task("orders.release_inventory", kwargs={"order_id": str(order.id)})
    flush_outbox("orders", str(order.id))
    return "refunded"


@celery_app.task(bind=True, base=OrderTask, name="payments.refund_payment")
def refund_payment(
    self: OrderTask,
    order_id: str,
    amount_cents: int | None = None,
    key: str = "compensation",
    actor: str = "system",
    reason: str | None = None,
    full: bool = False,
) -> str:
    """Refund an order: compensation after a cancel, or an owner/admin refund request."""
    order = Order.get(order_id)
    if order is None:
        return "missing"
    intent = (
        get_gateway().retrieve_intent(order.payment_intent_id) if order.payment_intent_id else None
    )
    if intent is None or intent.status != "succeeded":
        if intent is not None:
            get_gateway().cancel_intent(intent.id)
        return "nothing_to_refund"
    final = OrderStatus.REFUNDED if full and order.status_enum not in TERMINAL else None
    return refund_order(
        order, amount_cents=amount_cents, key=key, actor=actor, final_status=final, reason=reason
    )


@celery_app.task(bind=True, base=OrderTask, name="payments.sync_intent")
def sync_intent(self: OrderTask, order_id: str, source: str = "webhook") -> str:
    """Webhook / reconciliation: act on the intent's current state, then resume the chain."""
    order = Order.get(order_id)
    if order is None or not order.payment_intent_id:
        return "unknown_order"
    intent = get_gateway().retrieve_intent(order.payment_intent_id)
    moved = settle_from_intent(order, intent, actor=source)
    if moved is None:
        return "unchanged"
    flush_outbox("orders", order_id, moved.outbox)
    if moved.status_enum == OrderStatus.CONFIRMED:
        enqueue_chain(order_id, moved.correlation_id, OrderStatus.CONFIRMED)
    return moved.status
