"""Payment steps and compensations: create/confirm the intent, cancel, refund, settle.

Mongo is the truth: the intent id is stored on the order once (first writer wins), an
intent created by a losing duplicate run is cancelled on the spot, and every decision is
taken from the intent's *current* state in Stripe, so webhooks, resumes and retries that
arrive twice or out of order all land in the same place.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import structlog

from core.settings import get_settings
from gateways.stripe_gateway import (
    IntentInfo,
    NotFoundInStripe,
    PaymentMethodNotOwned,
    RefundInfo,
    get_gateway,
)
from models.order import Order, now_utc, parse_order_id
from models.user import User
from monitoring.metrics import AUTO_REFUNDS, DISPUTES, STEP_SECONDS, STRIPE_REFUNDS_RECORDED
from tasks.app import celery_app
from tasks.base import OrderTask, stop_chain
from tasks.dispatch import enqueue_chain
from tasks.events import flush_outbox
from tasks.order_steps import load_for_step
from tasks.outcomes import end_order
from workflows.errors import PermanentError, TransientError
from workflows.events import EventType
from workflows.payments import ENDED_UNSHIPPED, money_kept, payment_mismatch
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
        capture_method=get_settings().payment_capture,
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
    if intent.status == "requires_capture":
        # Manual capture: the card is authorized; the money is taken when the order ships.
        mismatch = payment_mismatch(
            order.total_cents, order.currency, intent.amount_capturable, intent.currency
        )
        if mismatch is not None:
            log.error("payment_amount_mismatch", intent_id=intent.id, detail=mismatch)
            if Order.flag_attention(
                str(order.id), mismatch.replace("received", "authorized"), actor
            ):
                flush_outbox("orders", str(order.id))
            return None
        return Order.transition_from(
            str(order.id),
            PAYABLE,
            OrderStatus.CONFIRMED,
            loaded=order,
            actor=actor,
            reason="payment authorized",
            fields={
                "authorized_cents": intent.amount_capturable,
                "authorized_at": now_utc(),
                "next_action": None,
            },
            event_data={
                "paymentIntentId": intent.id,
                "amountCents": intent.amount_capturable,
                "authorized": True,
            },
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
            else "payment canceled in Stripe"
            + (f": {intent.cancellation_reason}" if intent.cancellation_reason else "")
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
        idempotency_key=refund_key(str(order.id), key),
    )
    record_refund(str(order.id), refund, key=key, actor=actor, reason=reason, source="api")
    if final_status is not None:
        _move_refunded(str(order.id), final_status, actor=actor, reason=reason)
    flush_outbox("orders", str(order.id))
    return "refunded"


def refund_key(order_id: str, key: str) -> str:
    """The idempotency key of the order's refund named ``key`` (also its metadata)."""
    return f"order:{order_id}:refund:{key}"


def record_refund(
    order_id: str,
    refund: RefundInfo,
    *,
    key: str | None,
    actor: str,
    reason: str | None,
    source: str,
) -> bool:
    """Record one refund on the order, once (by refund id), with its timeline event.

    Our own refund path and Stripe's ``charge.refunded`` both land here, in either order and
    any number of times: only the first write counts it in ``refunded_cents`` and emits
    ``order.payment.refunded``. ``source`` is ``api`` (made by us) or ``stripe`` (the
    Dashboard, support, Radar).
    """
    record: dict[str, Any] = {
        "id": refund.id,
        "amountCents": refund.amount,
        "key": key,
        "source": source,
    }
    coll = Order._get_collection()
    result = coll.update_one(
        {"_id": parse_order_id(order_id), "refunds.id": {"$ne": refund.id}},
        {"$push": {"refunds": record}, "$inc": {"refunded_cents": refund.amount}},
    )
    if result.modified_count != 1:
        return False
    STRIPE_REFUNDS_RECORDED.labels(source).inc()
    Order.push_events(
        order_id,
        (EventType.PAYMENT_REFUNDED,),
        {
            "refundId": refund.id,
            "amountCents": refund.amount,
            "actor": actor,
            "reason": reason,
            "source": source,
        },
    )
    return True


def _move_refunded(order_id: str, to: OrderStatus, *, actor: str, reason: str | None) -> None:
    current = Order.get(order_id)
    if current is None or current.status_enum in TERMINAL:
        return
    before = current.status_enum
    moved = Order.transition(current, to, actor=actor, reason=reason)
    if moved is not None and before == OrderStatus.CONFIRMED:
        # Refunded before shipping: the held stock goes back on sale.
        celery_app.send_task("orders.release_inventory", kwargs={"order_id": order_id})


@celery_app.task(bind=True, base=OrderTask, name="payments.sync_refunds")
def sync_refunds(self: OrderTask, order_id: str, source: str = "webhook") -> int:
    """``charge.refunded``: re-read the payment's refunds from Stripe and record each once.

    The event's payload is not trusted (it may be old, or arrive twice, or before our own
    refund's record): Stripe's current list is. A refund carrying our key is ours
    (``source: api``); any other was made outside our API (``source: stripe``). Fully
    refunded → ``refunded`` (stock released if it had not shipped).
    """
    order = Order.get(order_id)
    if order is None or not order.payment_intent_id:
        return 0
    ours = refund_key(order_id, "")
    recorded = 0
    for refund in sorted(get_gateway().list_refunds(order.payment_intent_id), key=_created):
        if refund.status in ("failed", "canceled"):
            continue
        mine = bool(refund.idempotency_key and refund.idempotency_key.startswith(ours))
        recorded += record_refund(
            order_id,
            refund,
            key=refund.idempotency_key[len(ours) :] if mine and refund.idempotency_key else None,
            actor="api" if mine else "stripe",
            reason=None if mine else "refunded in Stripe",
            source="api" if mine else "stripe",
        )
    current = Order.get(order_id)
    paid = (current.paid_cents or 0) if current else 0
    if current is not None and paid > 0 and (current.refunded_cents or 0) >= paid:
        _move_refunded(order_id, OrderStatus.REFUNDED, actor="stripe", reason="refunded in Stripe")
    flush_outbox("orders", order_id)
    return recorded


def _created(refund: RefundInfo) -> int:
    return refund.created or 0


_DISPUTE_CLOSED = frozenset({"won", "lost", "warning_closed", "prevented"})


def dispute_record(dispute: dict[str, Any], event_created: int) -> dict[str, Any]:
    """The dispute as the order keeps it, from Stripe's dispute object."""
    due = (dispute.get("evidence_details") or {}).get("due_by")
    return {
        "id": dispute["id"],
        "amountCents": int(dispute.get("amount") or 0),
        "currency": dispute.get("currency"),
        "reason": dispute.get("reason"),
        "status": dispute.get("status"),
        "dueBy": datetime.fromtimestamp(int(due), UTC).isoformat() if due else None,
        "chargeId": dispute.get("charge") if isinstance(dispute.get("charge"), str) else None,
        "eventCreated": int(event_created or 0),
    }


@celery_app.task(bind=True, base=OrderTask, name="payments.record_dispute")
def record_dispute(
    self: OrderTask,
    dispute: dict[str, Any],
    event_type: str,
    event_created: int,
    order_id: str | None = None,
) -> str:
    """``charge.dispute.*``: keep the dispute on the order, tell the timeline, flag it.

    Events may arrive twice or out of order: a record older than the one kept is ignored
    (``eventCreated``), the same state twice changes nothing. Opening (or the first sight of
    a dispute) emits ``order.payment.disputed``; closing ``order.payment.dispute_closed``
    with the outcome (``won``/``lost``); anything else ``order.payment.dispute_updated``.
    """
    order = Order.get(order_id) if order_id else None
    if order is None:
        intent_id = dispute.get("payment_intent")
        if not isinstance(intent_id, str) and isinstance(dispute.get("charge"), str):
            intent_id = get_gateway().retrieve_charge(dispute["charge"]).payment_intent
        order = Order.objects(payment_intent_id=intent_id).first() if intent_id else None
    if order is None:
        return "unknown_order"
    oid = str(order.id)
    record = dispute_record(dispute, event_created)
    status = record["status"] or "unknown"
    for _ in range(5):
        current = order if order is not None else Order.get(oid)
        order = None
        if current is None:
            return "unknown_order"
        kept = (current.disputes or {}).get(record["id"])
        if kept is not None and kept.get("eventCreated", 0) > record["eventCreated"]:
            return "stale"
        if kept is not None and {**kept, "eventCreated": 0} == {**record, "eventCreated": 0}:
            return "unchanged"
        if status in _DISPUTE_CLOSED:
            kinds: tuple[EventType, ...] = (EventType.PAYMENT_DISPUTE_CLOSED,)
        elif kept is None:
            kinds = (EventType.PAYMENT_DISPUTED,)
        else:
            kinds = (EventType.PAYMENT_DISPUTE_UPDATED,)
        data = {
            "disputeId": record["id"],
            "amountCents": record["amountCents"],
            "currency": record["currency"],
            "reason": record["reason"],
            "disputeStatus": status,
            "dueBy": record["dueBy"],
            "stripeEvent": event_type,
            "source": "stripe",
        }
        if status in _DISPUTE_CLOSED:
            data["outcome"] = status
        moved = Order.update_fields(
            current,
            actor="stripe",
            fields={f"disputes.{record['id']}": record, "dispute_status": status},
            events=kinds,
            event_data=data,
            note=f"dispute {record['id']}: {status}",
        )
        if moved is not None:
            break
    else:
        raise TransientError("order kept changing while recording its dispute")
    DISPUTES.labels(event_type, status).inc()
    amount = f"{record['amountCents']} {(record['currency'] or '').upper()}".strip()
    Order.flag_attention(
        oid,
        f"payment disputed ({record['reason']}): {amount}, {status}"
        + (f", respond by {record['dueBy']}" if record["dueBy"] else ""),
        "stripe",
    )
    flush_outbox("orders", oid)
    return status


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
            voided = get_gateway().cancel_intent(intent.id)
            if intent.status == "requires_capture":
                # Manual capture, not shipped: the authorization is voided, nothing refunded.
                Order.push_events(
                    order_id,
                    (EventType.ORDER_COMPENSATED,),
                    {
                        "compensation": "cancel_authorization",
                        "paymentIntentId": intent.id,
                        "intentStatus": voided.status,
                    },
                )
                flush_outbox("orders", order_id)
                return "authorization_canceled"
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


def return_kept_payment(order: Order, intent: IntentInfo, *, via: str) -> str:
    """Refund what ``intent`` holds if its order will never ship (``money_kept``).

    The order's own intent is refunded under the cancel compensation's key (whichever of
    the two runs first makes the refund, the other finds it) and recorded like any refund;
    ``paid_cents`` is set to what was received so the books balance. A second intent that
    charged the same order is refunded and told in the timeline only.
    """
    oid = str(order.id)
    own = intent.id == order.payment_intent_id
    if not money_kept(
        order.status,
        intent_status=intent.status,
        received_cents=intent.amount_received,
        refunded_cents=intent.refunded_cents,
        is_orders_intent=own,
    ):
        return "nothing"
    key = "compensation" if own else f"second-charge:{intent.id}"
    reason = (
        "paid after the order ended: returned automatically"
        if own
        else "second charge for this order: returned automatically"
    )
    if own:
        Order._get_collection().update_one(
            {"_id": order.id, "paid_cents": {"$lt": intent.amount_received}},
            {"$set": {"paid_cents": intent.amount_received}},
        )
    try:
        refund = get_gateway().refund(
            intent_id=intent.id, amount_cents=None, idempotency_key=refund_key(oid, key)
        )
    except PermanentError as exc:
        if exc.code == "charge_already_refunded":
            return "nothing"
        raise
    actor = f"system:auto-refund:{via}"
    if own:
        record_refund(oid, refund, key=key, actor=actor, reason=reason, source="api")
    else:
        Order.push_events(
            oid,
            (EventType.PAYMENT_REFUNDED,),
            {
                "refundId": refund.id,
                "amountCents": refund.amount,
                "paymentIntentId": intent.id,
                "actor": actor,
                "reason": reason,
                "source": "api",
            },
        )
    AUTO_REFUNDS.labels(via).inc()
    log.warning("kept_payment_returned", intent_id=intent.id, amount=refund.amount, via=via)
    flush_outbox("orders", oid)
    return "refunded"


@celery_app.task(bind=True, base=OrderTask, name="payments.return_kept_payment")
def return_kept_payment_task(self: OrderTask, order_id: str, intent_id: str, via: str) -> str:
    """Webhook path of ``return_kept_payment`` (``payment_intent.succeeded`` too late)."""
    order = Order.get(order_id)
    if order is None:
        return "unknown_order"
    return return_kept_payment(order, get_gateway().retrieve_intent(intent_id), via=via)


def return_kept_payments(intents: list[IntentInfo]) -> dict[str, int]:
    """Beat: of ``intents`` (a recent slice), those carrying our ``metadata.order_id`` that
    hold money for an order that will never ship are refunded (authorizations voided)."""
    counts = {"kept_checked": 0, "kept_returned": 0}
    for intent in intents:
        if intent.order_id and intent.status == "requires_capture":
            order = Order.get(intent.order_id)  # an authorization for an ended order: void it
            if order is not None and order.status in ENDED_UNSHIPPED:
                get_gateway().cancel_intent(intent.id)
                counts["kept_returned"] += 1
            continue
        if not intent.order_id or intent.status != "succeeded":
            continue
        if intent.amount_received - intent.refunded_cents <= 0:
            continue
        counts["kept_checked"] += 1
        order = Order.get(intent.order_id)
        if order is not None and return_kept_payment(order, intent, via="sweep") == "refunded":
            counts["kept_returned"] += 1
    return counts
