"""Payments: Stripe config, intents, payment methods, refunds, history, verified webhooks."""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from api.customer_views import payment_row
from api.deps import CurrentUser, IdempotencyKey, ensure_owner_or_admin
from api.envelope import ApiError, not_found, paginated, success
from api.order_schemas import PAYMENT_METHOD_PATTERN
from api.responses import error_responses
from api.schemas import ApiModel
from core.settings import get_settings
from gateways.stripe_gateway import (
    NotFoundInStripe,
    PaymentMethodNotOwned,
    WebhookSignatureError,
    get_gateway,
)
from models.order import Order, now_utc
from models.user import User
from models.webhook import WebhookEvent
from monitoring import tracing
from monitoring.metrics import WEBHOOK_DUPLICATES, WEBHOOK_SIGNATURE_FAILURES
from tasks import dispatch
from workflows.errors import PermanentError
from workflows.states import PAID_STATUSES, TERMINAL, OrderStatus

router = APIRouter(prefix="/api/payments", tags=["payments"])
INTENT_WEBHOOKS = frozenset(
    {
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.canceled",
        "payment_intent.requires_action",
        "payment_intent.processing",
        "payment_intent.amount_capturable_updated",
    }
)
DISPUTE_WEBHOOKS = frozenset(
    {
        "charge.dispute.created",
        "charge.dispute.updated",
        "charge.dispute.closed",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.funds_reinstated",
    }
)
REFUND_WEBHOOKS = frozenset({"charge.refunded", "charge.refund.updated"})
HANDLED_WEBHOOKS = INTENT_WEBHOOKS | DISPUTE_WEBHOOKS | REFUND_WEBHOOKS
SAVE_PATTERN = r"^(pm|card|src|tok)_[A-Za-z0-9_]{3,64}$"


class OrderRef(ApiModel):
    order_id: str = Field(min_length=1, max_length=64)


class ConfirmBody(ApiModel):
    order_id: str = Field(min_length=1, max_length=64)
    payment_method_id: str = Field(pattern=PAYMENT_METHOD_PATTERN)


class SaveMethodBody(ApiModel):
    payment_method_id: str = Field(pattern=SAVE_PATTERN)


class RefundBody(ApiModel):
    order_id: str = Field(min_length=1, max_length=64)
    amount_cents: int | None = Field(default=None, ge=1, le=100_000_000)
    reason: str = Field(min_length=1, max_length=300)


def _own_order(order_id: str, user: User) -> Order:
    order = Order.get(order_id)
    if order is None:
        raise not_found("order")
    ensure_owner_or_admin(user, order.user_id, "order")
    return order


def _method_public(m: Any) -> dict[str, Any]:
    return {
        "id": m.id,
        "brand": m.brand,
        "last4": m.last4,
        "expMonth": m.exp_month,
        "expYear": m.exp_year,
    }


def _method_error(exc: PermanentError) -> ApiError:
    """A refused payment method as the API answers it: absent (someone else's or unknown)
    → 404, declined → 402 ``CARD_DECLINED``, anything else Stripe refused → 402."""
    if isinstance(exc, PaymentMethodNotOwned | NotFoundInStripe):
        return not_found("payment method")
    code = "CARD_DECLINED" if "declin" in exc.code else "PAYMENT_METHOD_REJECTED"
    return ApiError(402, code, exc.message)


def _claim_for(owner: User, pm_id: str) -> tuple[str, Any]:
    """Attach ``pm_id`` (Stripe.js-made, or already the owner's) to the owner's customer.

    Returns (customer id, the method). Someone else's method → 404, as if it did not exist.
    """
    gateway = get_gateway()
    customer = owner.ensure_stripe_customer(gateway.ensure_customer)
    try:
        return customer, gateway.attach_payment_method(customer, pm_id)
    except PermanentError as exc:
        raise _method_error(exc) from exc


@router.get("/config", summary="Publishable key and Stripe.js URL for the browser")
def config():
    # testMode: the dashboard shows Stripe's test cards (development and test only).
    test_mode = not get_settings().is_production
    return success({**get_gateway().publishable_config(), "testMode": test_mode})


@router.post("/create-intent", summary="The order's PaymentIntent (same order → same intent)")
def create_intent(body: OrderRef, user: CurrentUser):
    order = _own_order(body.order_id, user)
    if not order.payment_intent_id:
        if order.status_enum in (OrderStatus.FAILED, OrderStatus.CANCELLED):
            raise ApiError(409, "ORDER_CLOSED", f"order is {order.status}")
        raise ApiError(
            409,
            "INTENT_NOT_READY",
            "the payment is being prepared; retry shortly",
            headers={"Retry-After": "1"},
        )
    intent = get_gateway().retrieve_intent(order.payment_intent_id)
    return success(
        {
            "clientSecret": intent.client_secret,
            "paymentIntentId": intent.id,
            "amount": intent.amount,
            "currency": intent.currency,
            "status": intent.status,
            "orderStatus": order.status,
        }
    )


@router.post("/confirm", status_code=202, summary="Pay a waiting order with a saved method")
def confirm(body: ConfirmBody, user: CurrentUser):
    order = _own_order(body.order_id, user)
    owner = User.by_id(order.user_id)
    if owner is None:
        raise not_found("payment method")
    # Checked here, not in the step: the caller learns at once (404) that the card is not
    # theirs, and the order keeps waiting for a usable one instead of failing. Read first
    # (unknown or someone else's → 404 whatever the order's state), attached only once
    # the order is known to be waiting for it.
    try:
        method = get_gateway().get_payment_method(body.payment_method_id)
    except NotFoundInStripe as exc:
        raise not_found("payment method") from exc
    if method.customer is not None and method.customer != owner.stripe_customer_id:
        raise not_found("payment method")
    if order.status_enum != OrderStatus.PAYMENT_PENDING:
        raise ApiError(409, "INVALID_TRANSITION", f"order is {order.status}: nothing to confirm")
    _claim_for(owner, body.payment_method_id)
    moved = Order.update_fields(
        order,
        actor="customer",
        fields={"payment_method_id": body.payment_method_id},
        note="payment method chosen",
    )
    if moved is None:
        raise ApiError(409, "CONFLICT", "the order changed meanwhile; reload and retry")
    # The rest of the chain joins the order's trace (linked to this request's).
    with tracing.order_span("order.payment_confirm", order.trace_parent, order_id=str(order.id)):
        dispatch.enqueue_chain(str(order.id), order.correlation_id, OrderStatus.PAYMENT_PENDING)
        dispatch.enqueue_outbox("orders", str(order.id))
    return success(
        {"orderId": str(order.id), "status": moved.status},
        status_code=202,
        message="payment is being confirmed",
    )


@router.get("/payment-methods/{customer_id}", summary="Saved cards (`me` or a customer id)")
def payment_methods(customer_id: str, user: CurrentUser):
    if customer_id == "me":
        customer = user.stripe_customer_id
    else:
        owner = User.objects(stripe_customer_id=customer_id).first()
        if owner is None:
            raise not_found("customer")
        ensure_owner_or_admin(user, str(owner.id), "customer")
        customer = customer_id
    methods = get_gateway().list_payment_methods(customer) if customer else []
    return success({"customerId": customer, "paymentMethods": [_method_public(m) for m in methods]})


@router.post("/save-payment-method", status_code=201, summary="Attach a card or token to me")
def save_payment_method(body: SaveMethodBody, user: CurrentUser):
    gateway = get_gateway()
    if body.payment_method_id.startswith("tok_"):
        customer = user.ensure_stripe_customer(gateway.ensure_customer)
        try:
            method = gateway.attach_token(customer, body.payment_method_id)
        except PermanentError as exc:
            raise _method_error(exc) from exc
    else:
        customer, method = _claim_for(user, body.payment_method_id)
    return success(
        {"paymentMethod": _method_public(method), "customerId": customer}, status_code=201
    )


@router.post("/refund", status_code=202, summary="Refund an order (owners: full, within policy)")
def refund(body: RefundBody, user: CurrentUser, idempotency_key: IdempotencyKey = None):
    order = _own_order(body.order_id, user)
    if idempotency_key:
        scoped = f"{user.id}:{idempotency_key}"
        previous = next((r for r in order.refund_requests or [] if r.get("key") == scoped), None)
        if previous is not None:
            return _refund_replay(previous, body)
    paid = order.paid_cents or 0
    if not order.payment_intent_id or paid <= 0:
        raise ApiError(409, "ORDER_NOT_PAID", "nothing was charged for this order")
    left = paid - (order.refunded_cents or 0)
    amount = body.amount_cents if body.amount_cents is not None else left
    if left <= 0 or amount > left:
        raise ApiError(
            400,
            "REFUND_TOO_LARGE",
            f"at most {max(left, 0)} can still be refunded",
            [{"field": "amountCents", "message": f"at most {max(left, 0)}"}],
        )
    if not user.is_admin:
        _check_owner_policy(order, amount, left)
    answer = {"orderId": str(order.id), "amountCents": amount, "remainingCents": left - amount}
    key = uuid.uuid4().hex
    if idempotency_key:
        # The refund's own key derives from the client's: a replay refunds nothing twice,
        # even against Stripe (the gateway sends it as Stripe's idempotency key).
        key = "idem-" + hashlib.sha256(scoped.encode()).hexdigest()[:32]
        record = {"key": scoped, "hash": body.fingerprint(), "answer": answer, "at": now_utc()}
        previous = Order.claim_refund_request(str(order.id), record)
        if previous is not None:  # a concurrent twin recorded it first
            return _refund_replay(previous, body)
    try:
        dispatch.enqueue_task(
            "payments.refund_payment",
            order_id=str(order.id),
            amount_cents=amount,
            key=key,
            actor="admin" if user.is_admin else "customer",
            reason=body.reason,
            full=amount == left,
        )
    except Exception:
        if idempotency_key:  # nothing was queued: the same key may be sent again
            Order.forget_refund_request(str(order.id), scoped)
        raise
    return success(answer, message="refund accepted", status_code=202)


def _refund_replay(previous: dict[str, Any], body: RefundBody):
    if previous.get("hash") != body.fingerprint():
        raise ApiError(
            409, "IDEMPOTENCY_KEY_REUSED", "this Idempotency-Key was used with a different body"
        )
    return success(previous["answer"], message="refund already accepted for this Idempotency-Key")


def _check_owner_policy(order: Order, amount: int, left: int) -> None:
    if amount != left:
        raise ApiError(403, "FORBIDDEN", "customers may only refund the whole order")
    status = order.status_enum
    if status == OrderStatus.CONFIRMED:
        return
    window = timedelta(seconds=get_settings().refund_window_seconds)
    if (
        status == OrderStatus.DELIVERED
        and order.delivered_at
        and now_utc() - order.delivered_at <= window
    ):
        return
    raise ApiError(
        409,
        "REFUND_NOT_ALLOWED",
        "refunds are possible before shipping or within the window after delivery",
    )


@router.get("/history/{customer_id}", summary="Payments and refunds (`me` or a customer id)")
def history(
    customer_id: str,
    user: CurrentUser,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
):
    if customer_id == "me":
        owner_id = str(user.id)
    else:
        owner = User.objects(stripe_customer_id=customer_id).first()
        if owner is None:
            raise not_found("customer")
        ensure_owner_or_admin(user, str(owner.id), "customer")
        owner_id = str(owner.id)
    cursor = Order.objects(user_id=owner_id, payment_intent_id__ne=None)
    total = cursor.count()
    page_of = cursor.order_by("-created_at").skip((page - 1) * limit).limit(limit)
    rows = [payment_row(o, admin=user.is_admin) for o in page_of]
    return paginated("payments", rows, page=page, limit=limit, total=total)


@router.post(
    "/webhook",
    summary="Stripe webhook: verified, deduplicated, acted on later",
    # The raw body is read by hand (the signature covers its bytes): documented here.
    responses=error_responses(400),
    openapi_extra={
        "parameters": [
            {
                "name": "Stripe-Signature",
                "in": "header",
                "required": True,
                "schema": {"type": "string"},
                "description": "t=<unix time>,v1=<HMAC-SHA256 of t.body>; 400 if bad or stale",
            }
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
    },
)
async def webhook(request: Request):
    payload = await request.body()
    signature = request.headers.get("stripe-signature")
    # Verification and Mongo are blocking: keep them off the event loop.
    return await run_in_threadpool(_handle_webhook, payload, signature)


def _handle_webhook(payload: bytes, signature: str | None):
    try:
        event = get_gateway().verify_webhook(payload, signature)
    except WebhookSignatureError as exc:
        WEBHOOK_SIGNATURE_FAILURES.inc()
        raise ApiError(400, "INVALID_SIGNATURE", str(exc) or "invalid webhook signature") from exc
    event_id, event_type = str(event.get("id") or ""), str(event.get("type") or "")
    obj = (event.get("data") or {}).get("object") or {}
    if not event_id or not isinstance(obj, dict):
        raise ApiError(400, "MALFORMED_EVENT", "webhook event without id or data.object")
    if event_type not in HANDLED_WEBHOOKS:
        return success({"received": True, "ignored": event_type}, message="event type ignored")
    if event_type in DISPUTE_WEBHOOKS or event_type in REFUND_WEBHOOKS:
        return _charge_event(event, event_type, obj)
    order_id = (obj.get("metadata") or {}).get("order_id")
    if order_id:
        order = Order.get(order_id)
    else:  # no metadata: find the order by its intent
        order = Order.objects(payment_intent_id=obj["id"]).first() if obj.get("id") else None
        order_id = str(order.id) if order else None
    if order is not None and _money_to_return(event_type, obj, order):
        # Paid for an order that will never ship (or a second charge): refunded by a worker.
        if not WebhookEvent.record_once(event_id, event_type, order_id):
            WEBHOOK_DUPLICATES.inc()
            return success({"received": True, "duplicate": True}, message="duplicate ignored")
        return _enqueue_or_forget(
            event_id,
            "payments.return_kept_payment",
            order_id=order_id,
            intent_id=obj["id"],
            via="webhook",
        )
    if order is not None and order.status_enum in PAID_STATUSES | TERMINAL:
        # Past payment for good: acting on it would change nothing (the chain, a resume or
        # an earlier delivery settled it), so neither a dedupe record nor a task is needed.
        return success({"received": True, "settled": order.status}, message="already settled")
    if not WebhookEvent.record_once(event_id, event_type, order_id):
        WEBHOOK_DUPLICATES.inc()
        return success({"received": True, "duplicate": True}, message="duplicate ignored")
    if order is None:
        return success({"received": True, "ignored": "unknown order"})
    try:
        # The sync task joins the order's trace (linked to this request's).
        with tracing.order_span(
            "stripe.webhook", order.trace_parent, order_id=order_id, stripe_event=event_type
        ):
            dispatch.enqueue_task("payments.sync_intent", order_id=order_id, source="webhook")
    except Exception as exc:
        WebhookEvent.forget(event_id)  # let Stripe's retry be processed
        raise ApiError(503, "BROKER_UNAVAILABLE", "could not queue the webhook; retry") from exc
    return success({"received": True, "orderId": order_id})


def _charge_event(event: dict[str, Any], event_type: str, obj: dict[str, Any]):
    """Refunds and disputes made in Stripe (Dashboard, support, Radar, the card network).

    They name a charge (and usually its intent); the order is found by its intent. They
    are acted on whatever the order's status (a shipped or refunded order can still be
    disputed). The worker re-reads refunds from Stripe; a dispute is recorded from the
    verified event (event ``created`` orders out-of-order deliveries).
    """
    event_id = str(event["id"])
    intent_id = obj.get("payment_intent")
    if isinstance(intent_id, dict):
        intent_id = intent_id.get("id")
    # A charge, a refund (charge.refund.updated) and a dispute all name the intent; a
    # dispute may not (payment_intent null): the worker then asks Stripe for its charge.
    order = Order.objects(payment_intent_id=intent_id).first() if intent_id else None
    order_id = str(order.id) if order else None
    if event_type in REFUND_WEBHOOKS and order is None:
        return success({"received": True, "ignored": "unknown order"})
    if not WebhookEvent.record_once(event_id, event_type, order_id):
        WEBHOOK_DUPLICATES.inc()
        return success({"received": True, "duplicate": True}, message="duplicate ignored")
    try:
        if event_type in REFUND_WEBHOOKS:
            dispatch.enqueue_task("payments.sync_refunds", order_id=order_id, source="webhook")
        else:
            dispatch.enqueue_task(
                "payments.record_dispute",
                dispute=obj,
                event_type=event_type,
                event_created=int(event.get("created") or 0),
                order_id=order_id,
            )
    except Exception as exc:
        WebhookEvent.forget(event_id)
        raise ApiError(503, "BROKER_UNAVAILABLE", "could not queue the webhook; retry") from exc
    return success({"received": True, "orderId": order_id})


def _money_to_return(event_type: str, obj: dict[str, Any], order: Order) -> bool:
    if event_type != "payment_intent.succeeded" or not isinstance(obj.get("id"), str):
        return False
    ended = order.status_enum in (OrderStatus.CANCELLED, OrderStatus.FAILED)
    return ended or (bool(order.payment_intent_id) and obj["id"] != order.payment_intent_id)


def _enqueue_or_forget(event_id: str, task: str, **kwargs: Any):
    try:
        dispatch.enqueue_task(task, **kwargs)
    except Exception as exc:
        WebhookEvent.forget(event_id)  # let Stripe's retry be processed
        raise ApiError(503, "BROKER_UNAVAILABLE", "could not queue the webhook; retry") from exc
    return success({"received": True, "orderId": kwargs.get("order_id")})
