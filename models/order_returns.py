"""Returns stored on their order: each change is one compare-and-set of the order, with its
``order.return.*`` event in the same update (so the timeline and webhooks see it)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from models.event import now_utc
from models.order import Order
from workflows.events import EventType
from workflows.returns import ReturnStatus, can_move

CAS_ATTEMPTS = 5
_EVENT_FOR = {
    ReturnStatus.REQUESTED: EventType.RETURN_REQUESTED,
    ReturnStatus.APPROVED: EventType.RETURN_APPROVED,
    ReturnStatus.REJECTED: EventType.RETURN_REJECTED,
    ReturnStatus.RECEIVED: EventType.RETURN_RECEIVED,
    ReturnStatus.REFUNDED: EventType.RETURN_REFUNDED,
}


class ReturnConflict(Exception):
    """The return is not in a status that allows this move (its current status is .status)."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


def find_return(order: Order, return_id: str) -> dict[str, Any] | None:
    return next((r for r in order.returns or [] if r.get("id") == return_id), None)


def _write(
    order_id: str,
    change: Callable[[Order], tuple[list[dict[str, Any]], dict[str, Any]]],
    *,
    actor: str,
    event: EventType,
    note: str,
) -> Order:
    """Apply ``change`` (order → new returns list, event data) under compare-and-set."""
    for _ in range(CAS_ATTEMPTS):
        order = Order.get(order_id)
        if order is None:
            raise LookupError(order_id)
        returns, data = change(order)
        moved = Order.update_fields(
            order,
            actor=actor,
            fields={"returns": returns},
            events=(event,),
            event_data=data,
            note=note,
        )
        if moved is not None:
            return moved
    raise ReturnConflict("busy")


def request_return(
    order_id: str, lines: list[dict[str, Any]], reason: str, *, actor: str
) -> tuple[Order, dict[str, Any]]:
    """Add a requested return; the caller has checked the lines and the window."""
    ret = {
        "id": f"ret_{uuid.uuid4().hex[:16]}",
        "status": ReturnStatus.REQUESTED.value,
        "lines": lines,
        "reason": reason,
        "requestedAt": now_utc(),
        "refundCents": None,
        "refundId": None,
    }

    def change(order: Order) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        return [*(order.returns or []), ret], {"returnId": ret["id"], "lines": lines}

    moved = _write(
        order_id, change, actor=actor, event=EventType.RETURN_REQUESTED, note="return requested"
    )
    return moved, ret


def move_return(
    order_id: str,
    return_id: str,
    to: ReturnStatus,
    *,
    actor: str,
    fields: dict[str, Any] | None = None,
    reason: str | None = None,
) -> tuple[Order, dict[str, Any]]:
    """Move one return along RETURN_MOVES; ReturnConflict (with its status) if it may not."""
    updated: dict[str, Any] = {}

    def change(order: Order) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        returns = [dict(r) for r in order.returns or []]
        ret = next((r for r in returns if r.get("id") == return_id), None)
        if ret is None:
            raise LookupError(return_id)
        if not can_move(ret["status"], to):
            raise ReturnConflict(ret["status"])
        ret.update({"status": to.value, f"{to.value}At": now_utc(), **(fields or {})})
        if reason:
            ret["decisionReason"] = reason
        updated.clear()
        updated.update(ret)
        return returns, {"returnId": return_id, "status": to.value, "reason": reason}

    moved = _write(order_id, change, actor=actor, event=_EVENT_FOR[to], note=f"return {to.value}")
    return moved, updated
