"""Orders: accept (202) and enqueue the chain; read, filter, change, cancel, resume."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import structlog
from bson import ObjectId
from fastapi import APIRouter, Body, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from kombu.exceptions import OperationalError as BrokerError
from mongoengine import NotUniqueError
from redis.exceptions import ConnectionError as RedisConnectionError

from api.customer_views import events_view, history_view, order_view, summary_view
from api.deps import AdminUser, CurrentUser, DataKeys, IdempotencyKey, ensure_owner_or_admin
from api.envelope import (
    ApiError,
    conditional,
    entity_tag,
    not_found,
    paginated,
    success,
    tag_matches,
)
from api.order_limits import enforce_unpaid_limits, placement_lock
from api.order_schemas import (
    SORTS,
    CancelBody,
    OrderCreate,
    OrderUpdate,
    iso_utc,
)
from api.ratelimit import rate_limit, user_key
from api.responses import error_responses
from core.context import correlation_id_var, new_correlation_id
from core.crypto import encrypt_json
from core.settings import get_settings
from models.event import timeline_for
from models.order import Order, new_order_number, now_utc
from models.product import Product
from models.user import User
from monitoring import tracing
from tasks import dispatch
from workflows.errors import PermanentError
from workflows.events import created_events
from workflows.pricing import PricedLine, format_minor, price_order
from workflows.states import CANCELLABLE, FINISHED, OrderStatus, can_transition, parse_status

router = APIRouter(prefix="/api/orders", tags=["orders"])
ADMIN_STATUS_MOVES = frozenset({OrderStatus.DELIVERED, OrderStatus.CANCELLED})
# The ETag a client read with GET /api/orders/{id}; a stale one answers 412 on PATCH/DELETE.
IfMatch = Annotated[str | None, Header(alias="If-Match", min_length=1, max_length=200)]
EXPORT_BATCH = 500


def bad_filter(field: str, message: str) -> ApiError:
    return ApiError(
        400, "VALIDATION_ERROR", f"invalid filter: {field}", [{"field": field, "message": message}]
    )


def _parse_when(field: str, value: str | None) -> datetime | None:
    if value is None:  # given but empty is a bad date, as the schema's date-time says
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().upper().replace("Z", "+00:00"))
    except ValueError as exc:
        raise bad_filter(field, "must be an ISO 8601 date or date-time") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _filters(
    status: str | None, date_from: str | None, date_to: str | None, sort: str
) -> tuple[dict[str, Any], str]:
    query: dict[str, Any] = {}
    if status:
        try:
            statuses = [parse_status(s).value for s in status.split(",") if s.strip()]
        except ValueError as exc:
            raise bad_filter("status", str(exc)) from exc
        query["status__in"] = statuses
    start, end = _parse_when("from", date_from), _parse_when("to", date_to)
    if start:
        query["created_at__gte"] = start
    if end:
        query["created_at__lte"] = end
    if sort not in SORTS:
        raise bad_filter("sort", f"one of {', '.join(SORTS)}")
    return query, SORTS[sort]


def _customers(orders: list[Order]) -> dict[str, dict[str, Any]]:
    """Email and name of each order's customer, for admin list rows (one query)."""
    ids = sorted({o.user_id for o in orders if o.user_id})
    users = User.objects(id__in=[i for i in ids if ObjectId.is_valid(i)]).only(
        "id", "email", "first_name", "last_name"
    )
    return {
        str(u.id): {"email": u.email, "name": f"{u.first_name} {u.last_name}".strip() or None}
        for u in users
    }


def _trace_links(order: Order, trace_ui: str) -> dict[str, Any]:
    """The order's trace and its page in the tracing UI (admin list rows)."""
    trace_id = tracing.trace_id_of(order.trace_parent)
    url = None
    if trace_id and trace_ui:
        url = (
            trace_ui.replace("{trace_id}", trace_id)
            if "{trace_id}" in trace_ui
            else f"{trace_ui.rstrip('/')}/{trace_id}"
        )
    return {"traceId": trace_id, "traceUrl": url}


def _page(
    query: dict[str, Any], order_by: str, page: int, limit: int, *, admin: bool, trace_ui: str = ""
):
    cursor = Order.objects(**query)
    total = cursor.count()
    items = list(cursor.order_by(order_by).skip((page - 1) * limit).limit(limit))
    who = _customers(items) if admin else {}
    rows = [summary_view(o, admin=admin, customer=who.get(o.user_id)) for o in items]
    if admin:
        rows = [{**row, **_trace_links(o, trace_ui)} for row, o in zip(rows, items, strict=True)]
    return paginated("orders", rows, page=page, limit=limit, total=total)


def _load_visible(order_id: str, user: User) -> Order:
    order = Order.get(order_id)
    if order is None:
        raise not_found("order")
    ensure_owner_or_admin(user, order.user_id, "order")
    return order


Page = Annotated[int, Query(ge=1, le=100_000)]
# Comma-separated statuses, any case, blanks around each ignored (what parse_status takes).
_ONE = "(?i:\\s*(?:" + "|".join(s.value for s in OrderStatus) + ")?\\s*)"
StatusFilter = Annotated[str | None, Query(pattern=f"^{_ONE}(?:,{_ONE})*$")]
# The schema lists the sorts (an enum); _filters maps them to fields.
SortParam = Literal[
    "createdAt", "-createdAt", "updatedAt", "-updatedAt", "totalCents", "-totalCents"
]
Limit = Annotated[int, Query(ge=1, le=100)]


def admin_filters(
    status: StatusFilter = None,
    needs_attention: Annotated[bool | None, Query(alias="needsAttention")] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    user_id: Annotated[str | None, Query(alias="userId", max_length=64)] = None,
    date_from: Annotated[
        str | None, Query(alias="from", json_schema_extra={"format": "date-time"})
    ] = None,
    date_to: Annotated[
        str | None, Query(alias="to", json_schema_extra={"format": "date-time"})
    ] = None,
    sort: SortParam = "-createdAt",
) -> tuple[dict[str, Any], str]:
    """The admin list's filters (also the export's): the Mongo query and the sort."""
    query, order_by = _filters(status, date_from, date_to, sort)
    if needs_attention is not None:
        query["needs_attention"] = needs_attention
    if q:
        q = q.strip()
        if q.upper().startswith("ORD-"):
            query["order_number"] = q.upper()
        else:
            query["user_email"] = q.lower()
    if user_id:
        query["user_id"] = user_id
    return query, order_by


AdminFilters = Annotated[tuple[dict[str, Any], str], Depends(admin_filters)]


@router.get("", summary="All orders (admin), with filters and search")
def list_orders(
    request: Request, _: AdminUser, filters: AdminFilters, page: Page = 1, limit: Limit = 20
):
    query, order_by = filters
    trace_ui = request.app.state.settings.tracing_ui_url
    return conditional(request, _page(query, order_by, page, limit, admin=True, trace_ui=trace_ui))


@router.get(
    "/my-orders",
    summary="The caller's orders (admins may pass userId)",
    responses=error_responses(403),  # a customer passing userId
)
def my_orders(
    request: Request,
    user: CurrentUser,
    page: Page = 1,
    limit: Limit = 10,
    status: StatusFilter = None,
    date_from: Annotated[
        str | None, Query(alias="from", json_schema_extra={"format": "date-time"})
    ] = None,
    date_to: Annotated[
        str | None, Query(alias="to", json_schema_extra={"format": "date-time"})
    ] = None,
    sort: SortParam = "-createdAt",
    user_id: Annotated[str | None, Query(alias="userId", max_length=64)] = None,
):
    query, order_by = _filters(status, date_from, date_to, sort)
    if user_id and not user.is_admin:
        raise ApiError(403, "FORBIDDEN", "only admins may list another user's orders")
    query["user_id"] = user_id if user_id else str(user.id)
    return conditional(request, _page(query, order_by, page, limit, admin=user.is_admin))


EXPORT_COLUMNS = (
    "orderNumber",
    "orderId",
    "createdAt",
    "status",
    "userId",
    "userEmail",
    "currency",
    "items",
    "subtotalCents",
    "taxCents",
    "shippingCents",
    "totalCents",
    "paidCents",
    "refundedCents",
    "subtotal",
    "tax",
    "shipping",
    "total",
    "paid",
    "refunded",
)
MONEY_COLUMNS = ("subtotal", "tax", "shipping", "total", "paid", "refunded")


def _export_row(order: Order) -> list[Any]:
    cents = {
        "subtotal": order.subtotal_cents or 0,
        "tax": order.tax_cents or 0,
        "shipping": order.shipping_cents or 0,
        "total": order.total_cents or 0,
        "paid": order.paid_cents or 0,
        "refunded": order.refunded_cents or 0,
    }
    units = sum(int(line.get("quantity") or 0) for line in order.items or [])
    return [
        order.order_number,
        str(order.id),
        iso_utc(order.created_at),
        order.status,
        order.user_id,
        order.user_email,
        order.currency,
        units,
        *(cents[name] for name in MONEY_COLUMNS),
        *(format_minor(cents[name], order.currency or "usd") for name in MONEY_COLUMNS),
    ]


def _csv_chunks(query: dict[str, Any], order_by: str) -> Iterator[str]:
    """The header, then one chunk per batch of orders, read with a cursor (never all at once)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_COLUMNS)
    cursor = Order.objects(**query).order_by(order_by).batch_size(EXPORT_BATCH)
    for n, order in enumerate(cursor, start=1):
        writer.writerow(_export_row(order))
        if n % EXPORT_BATCH == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


@router.get(
    "/export",
    summary="Orders as CSV for accounting (admin; the list's filters)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "one row per order"}},
)
def export_orders(
    _: AdminUser,
    filters: AdminFilters,
    export_format: Annotated[Literal["csv"], Query(alias="format")] = "csv",
):
    query, order_by = filters
    stamp = now_utc().strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        _csv_chunks(query, order_by),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="orders-{stamp}.{export_format}"'},
    )


@router.get("/stats", summary="Counts by status, revenue, average order, orders today")
def order_stats(user: CurrentUser):
    match: dict[str, Any] = {} if user.is_admin else {"user_id": str(user.id)}
    coll = Order._get_collection()
    by_status = {s.value: 0 for s in OrderStatus}
    paid = refunded = paid_count = total = 0
    for row in coll.aggregate(
        [
            {"$match": match},
            {
                "$group": {
                    "_id": "$status",
                    "n": {"$sum": 1},
                    "paid": {"$sum": "$paid_cents"},
                    "refunded": {"$sum": "$refunded_cents"},
                    "paidCount": {"$sum": {"$cond": [{"$gt": ["$paid_cents", 0]}, 1, 0]}},
                }
            },
        ]
    ):
        by_status[row["_id"]] = row["n"]
        total += row["n"]
        paid += row.get("paid") or 0
        refunded += row.get("refunded") or 0
        paid_count += row.get("paidCount") or 0
    as_of = now_utc()  # before the reads: events that happened after it are not counted
    midnight = as_of.replace(hour=0, minute=0, second=0, microsecond=0)
    today = coll.count_documents({**match, "created_at": {"$gte": midnight}})
    disputes = {"total": 0, "open": 0, "won": 0, "lost": 0}
    for row in coll.aggregate(
        [
            {"$match": {**match, "dispute_status": {"$type": "string"}}},
            {"$group": {"_id": "$dispute_status", "n": {"$sum": 1}}},
        ]
    ):
        disputes["total"] += row["n"]
        key = row["_id"] if row["_id"] in ("won", "lost") else "open"
        if row["_id"] in ("warning_closed", "prevented"):
            continue  # closed without a chargeback
        disputes[key] += row["n"]
    return success(
        {
            "stats": {
                "total": total,
                "byStatus": by_status,
                "totalRevenueCents": paid - refunded,
                "averageOrderCents": round(paid / paid_count) if paid_count else 0,
                # The parts, so a client can apply live events to the figures above.
                "paidCents": paid,
                "refundedCents": refunded,
                "paidCount": paid_count,
                "asOf": iso_utc(as_of),
                "ordersToday": today,
                "disputes": disputes,
                "currency": get_settings().currency,
            }
        }
    )


def _replay(existing: Order, fingerprint: str, keyring, user: User) -> Any:
    if existing.request_hash != fingerprint:
        raise ApiError(
            409, "IDEMPOTENCY_KEY_REUSED", "this Idempotency-Key was used with a different body"
        )
    return success(
        {"order": order_view(existing, keyring, admin=user.is_admin)},
        message="order already accepted for this Idempotency-Key",
        headers={"Location": f"/api/orders/{existing.id}"},
    )


def _price(body: OrderCreate) -> tuple[list[dict[str, Any]], Any]:
    skus = [i.sku for i in body.items]
    products = {p.sku: p for p in Product.objects(sku__in=skus)}
    errors = [
        {"field": f"items.{n}.sku", "message": f"unknown sku {item.sku}"}
        for n, item in enumerate(body.items)
        if item.sku not in products
    ]
    if errors:
        # Well-formed but naming no product: the thing referred to is not there (404).
        raise ApiError(404, "PRODUCT_NOT_FOUND", "unknown sku", errors)
    settings = get_settings()
    lines = [
        PricedLine(
            sku=i.sku,
            name=products[i.sku].name,
            unit_price_cents=products[i.sku].price_cents,
            quantity=i.quantity,
            currency=products[i.sku].currency,
        )
        for i in body.items
    ]
    try:
        totals = price_order(
            lines,
            tax_rate_bps=settings.tax_rate_bps,
            shipping_cents=settings.shipping_cents,
            currency=settings.currency,
        )
    except PermanentError as exc:
        raise ApiError(400, "CURRENCY_MISMATCH", exc.message) from exc
    items = [
        {
            "sku": ln.sku,
            "name": ln.name,
            "unitPriceCents": ln.unit_price_cents,
            "quantity": ln.quantity,
            "lineTotalCents": ln.line_total_cents,
        }
        for ln in lines
    ]
    return items, totals


# The order a POST answers, for the links below (Schemathesis's stateful phase follows them).
_ORDER_ID = {"order_id": "$response.body#/data/order/id"}
_ACCEPTED = {
    202: {
        "description": "Accepted: the order, priced, with the chain enqueued",
        "headers": {"Location": {"description": "/api/orders/{id}", "schema": {"type": "string"}}},
        "links": {
            name: {"operationId": op, "parameters": _ORDER_ID}
            for name, op in (
                ("GetOrder", "getOrder"),
                ("GetTimeline", "getOrderTimeline"),
                ("GetTracking", "getOrderTracking"),
                ("UpdateOrder", "updateOrder"),
                ("CancelOrder", "cancelOrder"),
            )
        },
    }
}


@router.post(
    "",
    status_code=202,
    summary="Place an order: priced here, answered 202, the chain already enqueued",
    dependencies=[Depends(rate_limit("rate_limit_orders", user_key)), Depends(placement_lock)],
    responses={**_ACCEPTED, **error_responses(404)},
)
def create_order(
    body: OrderCreate, user: CurrentUser, keyring: DataKeys, idempotency_key: IdempotencyKey = None
):
    fingerprint = body.fingerprint()
    if idempotency_key:
        existing = Order.objects(user_id=str(user.id), idempotency_key=idempotency_key).first()
        if existing is not None:
            return _replay(existing, fingerprint, keyring, user)
    items, totals = _price(body)
    enforce_unpaid_limits(str(user.id), items)  # stock hoarding (api/order_limits.py)
    correlation_id = correlation_id_var.get() or new_correlation_id()
    at = now_utc()
    order = Order(
        id=ObjectId(),
        order_number=new_order_number(at),
        user_id=str(user.id),
        user_email=user.email,
        items=items,
        subtotal_cents=totals.subtotal_cents,
        tax_cents=totals.tax_cents,
        shipping_cents=totals.shipping_cents,
        total_cents=totals.total_cents,
        currency=totals.currency,
        shipping_address_enc=encrypt_json(body.shipping_address.model_dump(mode="json"), keyring),
        notes=body.notes or "",
        status=OrderStatus.PENDING.value,
        version=1,
        correlation_id=correlation_id,
        trace_parent=tracing.current_traceparent(),
        payment_method_id=body.payment_method_id,
        idempotency_key=idempotency_key,
        request_hash=fingerprint,
        history=[{"status": "pending", "at": at, "reason": "order placed", "actor": "customer"}],
        created_at=at,
        updated_at=at,
    )
    order.outbox = order.make_events(
        created_events(),
        1,
        {
            "totalCents": totals.total_cents,
            "currency": totals.currency,
            "itemCount": len(items),
            "actor": "customer",
            "to": OrderStatus.PENDING.value,
        },
    )
    order.last_event_id = order.outbox[-1]["eventId"]
    try:
        order.save(force_insert=True)
    except NotUniqueError:
        existing = Order.objects(user_id=str(user.id), idempotency_key=idempotency_key).first()
        if idempotency_key and existing is not None:
            return _replay(existing, fingerprint, keyring, user)
        raise
    order_id = str(order.id)
    # The order's id on this request's span and on the spans of the chain it queues.
    structlog.contextvars.bind_contextvars(order_id=order_id)
    tracing.annotate(order_id=order_id)
    try:
        # order.created leaves the outbox with the first step's own events (or the sweep).
        dispatch.start(order_id, correlation_id)
    except (BrokerError, RedisConnectionError, OSError) as exc:
        # Nothing ran yet: remove the order so no half-accepted order remains.
        order.delete()
        raise ApiError(
            503,
            "BROKER_UNAVAILABLE",
            "the task queue is unavailable, try again shortly",
            headers={"Retry-After": "5"},
        ) from exc
    return success(
        {"order": order_view(order, keyring, admin=user.is_admin)},
        message="order accepted",
        status_code=202,
        headers={"Location": f"/api/orders/{order_id}"},
    )


def _order_body(order: Order, keyring, *, admin: bool) -> JSONResponse:
    """GET /api/orders/{id}'s response: its ETag is what If-Match is compared with."""
    return success({"order": order_view(order, keyring, admin=admin)})


def _check_if_match(if_match: str | None, order: Order, keyring, *, admin: bool) -> None:
    if if_match is None:
        return
    current = entity_tag(_order_body(order, keyring, admin=admin), order.version)
    if not tag_matches(if_match, current):
        raise ApiError(
            412,
            "PRECONDITION_FAILED",
            "the order changed since it was read: fetch it again (its ETag is now "
            f"{current}) and retry",
        )


@router.get(
    "/{order_id}",
    summary="One order (owner or admin); ETag / If-None-Match → 304",
    operation_id="getOrder",
)
def get_order(order_id: str, request: Request, user: CurrentUser, keyring: DataKeys):
    order = _load_visible(order_id, user)
    return conditional(request, _order_body(order, keyring, admin=user.is_admin), order.version)


@router.patch(
    "/{order_id}",
    summary="Change address/notes before shipping; admins move status",
    operation_id="updateOrder",
    responses=error_responses(403),  # a customer sending status
)
def update_order(
    order_id: str, body: OrderUpdate, user: CurrentUser, keyring: DataKeys, if_match: IfMatch = None
):
    order = _load_visible(order_id, user)
    _check_if_match(if_match, order, keyring, admin=user.is_admin)
    actor = "admin" if user.is_admin else "customer"
    if body.status is not None:
        if not user.is_admin:
            raise ApiError(403, "FORBIDDEN", "only admins may change an order's status")
        return _admin_move(order, body, keyring)
    fields: dict[str, Any] = {}
    if body.shipping_address is not None:
        fields["shipping_address_enc"] = encrypt_json(
            body.shipping_address.model_dump(mode="json"), keyring
        )
    if body.notes is not None:
        fields["notes"] = body.notes
    if not fields:
        raise ApiError(
            400,
            "VALIDATION_ERROR",
            "nothing to change",
            [{"field": "body", "message": "send shippingAddress, notes or status"}],
        )
    if order.status_enum not in CANCELLABLE:
        raise ApiError(409, "ORDER_LOCKED", f"order is {order.status}: it can no longer be changed")
    moved = Order.update_fields(order, actor=actor, fields=fields, note=f"updated by {actor}")
    if moved is None and if_match is not None:
        raise ApiError(412, "PRECONDITION_FAILED", "the order changed since it was read")
    if moved is None:
        raise ApiError(409, "CONFLICT", "the order changed meanwhile; reload and retry")
    dispatch.enqueue_outbox("orders", order_id)
    return success({"order": order_view(moved, keyring, admin=user.is_admin)})


def _admin_move(order: Order, body: OrderUpdate, keyring) -> Any:
    try:
        target = parse_status(body.status or "")
    except ValueError as exc:
        raise ApiError(
            400, "VALIDATION_ERROR", "invalid status", [{"field": "status", "message": str(exc)}]
        ) from exc
    if target not in ADMIN_STATUS_MOVES or not can_transition(order.status_enum, target):
        raise ApiError(
            409,
            "INVALID_TRANSITION",
            f"cannot move an order from {order.status} to {target.value} here",
        )
    if target == OrderStatus.CANCELLED:
        moved, previous = dispatch.cancel(
            str(order.id), body.reason or "cancelled by admin", actor="admin"
        )
        if previous is None:
            raise ApiError(409, "INVALID_TRANSITION", f"order is {moved.status if moved else '?'}")
    else:
        moved = Order.transition(
            order, target, actor="admin", reason=body.reason, fields={"delivered_at": now_utc()}
        )
        if moved is None:
            raise ApiError(409, "CONFLICT", "the order changed meanwhile; reload and retry")
    dispatch.enqueue_outbox("orders", str(order.id))
    return success({"order": order_view(moved, keyring, admin=True)})


@router.delete(
    "/{order_id}",
    status_code=202,
    summary="Cancel with a reason (before shipping)",
    operation_id="cancelOrder",
)
def cancel_order(
    order_id: str,
    user: CurrentUser,
    keyring: DataKeys,
    reason: Annotated[str | None, Query(max_length=300)] = None,
    body: Annotated[CancelBody | None, Body()] = None,
    if_match: IfMatch = None,
):
    order = _load_visible(order_id, user)
    _check_if_match(if_match, order, keyring, admin=user.is_admin)
    why = (body.reason if body else None) or (reason or "").strip()
    if not why:
        raise ApiError(
            400,
            "VALIDATION_ERROR",
            "a reason is required",
            [{"field": "reason", "message": "field required"}],
        )
    actor = "admin" if user.is_admin else "customer"
    moved, previous = dispatch.cancel(order_id, why, actor=actor)
    if previous is None:
        current = moved or order
        raise ApiError(
            409, "INVALID_TRANSITION", f"order is {current.status}: it cannot be cancelled"
        )
    return success(
        {"order": order_view(moved, keyring, admin=user.is_admin)},
        message="order cancelled",
        status_code=202,
    )


@router.get(
    "/{order_id}/tracking",
    summary="Carrier, tracking number and status timeline",
    operation_id="getOrderTracking",
)
def tracking(order_id: str, user: CurrentUser):
    order = _load_visible(order_id, user)
    return success(
        {
            "tracking": {
                "orderNumber": order.order_number,
                "status": order.status,
                "carrier": order.carrier,
                "trackingNumber": order.tracking_number,
                "estimatedDelivery": iso_utc(order.estimated_delivery),
                "timeline": history_view(order, admin=user.is_admin),
            }
        }
    )


@router.get(
    "/{order_id}/timeline",
    summary="Every event of this order, oldest first",
    operation_id="getOrderTimeline",
)
def timeline(order_id: str, user: CurrentUser):
    order = _load_visible(order_id, user)
    admin = user.is_admin
    return success(
        {
            "orderId": order_id,
            "timeline": events_view(timeline_for(order_id), admin=admin),
            "history": history_view(order, admin=admin),
        }
    )


@router.post(
    "/{order_id}/resume", status_code=202, summary="Re-enqueue the remaining chain (admin)"
)
def resume(order_id: str, _: AdminUser):
    order = Order.get(order_id)
    if order is None:
        raise not_found("order")
    if order.status_enum in FINISHED:
        raise ApiError(409, "INVALID_TRANSITION", f"order is {order.status}: nothing to resume")
    Order.clear_attention(order_id)
    steps = dispatch.resume(order_id, actor="admin")
    return success(
        {"orderId": order_id, "status": order.status, "enqueued": steps},
        message="resumed" if steps else "nothing to enqueue",
        status_code=202,
    )
