"""Returns of delivered orders: the customer asks, an admin approves or rejects, receiving
the goods restocks them and refunds the lines (through the payments path, once)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import Field

from api.deps import AdminUser, AppSettings, CurrentUser, ensure_owner_or_admin
from api.envelope import ApiError, not_found, paginated, success
from api.order_schemas import return_public
from api.responses import error_responses
from api.schemas import ApiModel
from models.event import now_utc
from models.order import Order
from models.order_returns import ReturnConflict, find_return, move_return, request_return
from models.product import Product
from tasks.dispatch import enqueue_outbox, enqueue_task
from workflows.pricing import MAX_QUANTITY, MIN_QUANTITY
from workflows.returns import ReturnStatus, line_errors, refund_cents, within_window
from workflows.states import OrderStatus

router = APIRouter(prefix="/api/orders", tags=["returns"])
admin_router = APIRouter(prefix="/api/returns", tags=["returns"])
REFUND_RETURN = "payments.refund_return"


class ReturnLine(ApiModel):
    sku: str = Field(min_length=1, max_length=40)
    quantity: int = Field(ge=MIN_QUANTITY, le=MAX_QUANTITY)


class ReturnCreate(ApiModel):
    lines: list[ReturnLine] = Field(min_length=1, max_length=50)
    reason: str = Field(min_length=1, max_length=300)


class ReturnDecision(ApiModel):
    reason: str | None = Field(default=None, min_length=1, max_length=300)


class ReturnRejection(ApiModel):
    reason: str = Field(min_length=1, max_length=300)


def _order(order_id: str, user) -> Order:
    order = Order.get(order_id)
    if order is None:
        raise not_found("order")
    ensure_owner_or_admin(user, order.user_id, "order")
    return order


def _answer(order: Order, return_id: str, *, status_code: int = 200, message: str | None = None):
    ret = find_return(order, return_id)
    enqueue_outbox("orders", str(order.id))
    return success({"return": return_public(ret or {})}, status_code=status_code, message=message)


def _move(order_id: str, return_id: str, to: ReturnStatus, actor: str, **kw) -> Order:
    try:
        moved, _ = move_return(order_id, return_id, to, actor=actor, **kw)
    except LookupError as exc:
        raise not_found("return") from exc
    except ReturnConflict as exc:
        raise ApiError(
            409, "INVALID_RETURN_TRANSITION", f"the return is {exc.status}: it cannot be {to.value}"
        ) from exc
    return moved


@router.post(
    "/{order_id}/returns",
    status_code=201,
    summary="Ask to return lines of a delivered order (within the return window)",
    responses=error_responses(400, 401, 404, 409),
)
def create_return(
    order_id: str, body: ReturnCreate, user: CurrentUser, settings: AppSettings
) -> JSONResponse:
    order = _order(order_id, user)
    if order.status_enum != OrderStatus.DELIVERED:
        raise ApiError(
            409, "ORDER_NOT_RETURNABLE", f"order is {order.status}: only delivered orders return"
        )
    delivered = order.delivered_at
    if delivered is not None and delivered.tzinfo is None:
        delivered = delivered.replace(tzinfo=now_utc().tzinfo)
    if not within_window(delivered, now_utc(), settings.return_window_seconds):
        raise ApiError(409, "RETURN_WINDOW_CLOSED", "the return window for this order has closed")
    lines = [line.model_dump() for line in body.lines]
    errors = line_errors(order.items, order.returns or [], lines)
    if errors:
        raise ApiError(400, "VALIDATION_ERROR", "these lines cannot be returned", errors)
    actor = "admin" if user.is_admin else "customer"
    moved, ret = request_return(order_id, lines, body.reason, actor=actor)
    return _answer(moved, ret["id"], status_code=201, message="return requested")


@router.get(
    "/{order_id}/returns",
    summary="The order's returns",
    responses=error_responses(401, 404),
)
def list_returns(order_id: str, user: CurrentUser) -> JSONResponse:
    order = _order(order_id, user)
    return success({"returns": [return_public(r) for r in order.returns or []]})


@router.post(
    "/{order_id}/returns/{return_id}/approve",
    summary="Approve a requested return (admin)",
    responses=error_responses(400, 401, 403, 404, 409),
)
def approve_return(
    order_id: str, return_id: str, _: AdminUser, body: ReturnDecision | None = None
) -> JSONResponse:
    order = _order(order_id, _)
    ret = find_return(order, return_id)
    if ret is None:
        raise not_found("return")
    refund = refund_cents(
        order.items, ret["lines"], subtotal_cents=order.subtotal_cents, tax_cents=order.tax_cents
    )
    moved = _move(
        order_id,
        return_id,
        ReturnStatus.APPROVED,
        "admin",
        fields={"refundCents": refund},
        reason=body.reason if body else None,
    )
    return _answer(moved, return_id, message="return approved")


@router.post(
    "/{order_id}/returns/{return_id}/reject",
    summary="Reject a requested return with a reason (admin)",
    responses=error_responses(400, 401, 403, 404, 409),
)
def reject_return(
    order_id: str, return_id: str, body: ReturnRejection, _: AdminUser
) -> JSONResponse:
    _order(order_id, _)
    moved = _move(order_id, return_id, ReturnStatus.REJECTED, "admin", reason=body.reason)
    return _answer(moved, return_id, message="return rejected")


@router.post(
    "/{order_id}/returns/{return_id}/receive",
    status_code=202,
    summary="The goods arrived: restock them and refund the lines (admin; idempotent)",
    responses=error_responses(401, 403, 404, 409),
)
def receive_return(order_id: str, return_id: str, _: AdminUser) -> JSONResponse:
    order = _order(order_id, _)
    ret = find_return(order, return_id)
    if ret is None:
        raise not_found("return")
    if ret["status"] in (ReturnStatus.RECEIVED, ReturnStatus.REFUNDED):
        # Sent again: finish what the first call started (both steps happen once).
        if ret["status"] == ReturnStatus.RECEIVED:
            enqueue_task(REFUND_RETURN, order_id=order_id, return_id=return_id)
        return _answer(order, return_id, status_code=200, message=f"return already {ret['status']}")
    if ret["status"] != ReturnStatus.APPROVED:
        raise ApiError(
            409, "INVALID_RETURN_TRANSITION", f"the return is {ret['status']}: approve it first"
        )
    # Approved can only move to received, so restocking first is safe; each sku once per return.
    for line in ret["lines"]:
        Product.restock_return(line["sku"], return_id, int(line["quantity"]))
    moved = _move(order_id, return_id, ReturnStatus.RECEIVED, "admin")
    enqueue_task(REFUND_RETURN, order_id=order_id, return_id=return_id)
    return _answer(moved, return_id, status_code=202, message="received: restocked, refund queued")


@admin_router.get(
    "",
    summary="Returns across orders, newest first (admin), e.g. ?status=requested",
    responses=error_responses(400, 401, 403),
)
def all_returns(
    _: AdminUser,
    status: Literal["requested", "approved", "rejected", "received", "refunded"] | None = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> JSONResponse:
    match = {"returns.status": status} if status else {"returns.0": {"$exists": True}}
    cursor = Order.objects(__raw__=match)
    orders = list(cursor.order_by("-updated_at").skip((page - 1) * limit).limit(limit))
    rows = [
        {"orderId": str(o.id), "orderNumber": o.order_number, **return_public(r)}
        for o in orders
        for r in o.returns or []
        if status is None or r.get("status") == status
    ]
    return paginated("returns", rows, page=page, limit=limit, total=cursor.count())
