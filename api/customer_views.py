"""One place per shape for what a customer is shown, and what only admins see.

Orders, order list rows, history entries and events each have one function here that
takes ``admin``: admins get everything (task names as actors, intent ids, correlation ids,
raw decline text, the attention reason); customers get the same shape with internals
removed and reasons in plain words (``workflows.customer_text``). Routes, the WebSocket
feed and the payments history all call these, so no customer path can forget a field.
"""

from __future__ import annotations

from typing import Any

from api.order_schemas import history_public, iso_utc, order_public, order_summary
from core.crypto import KeyRing
from models.order import Order
from workflows.customer_text import customer_actor, customer_reason
from workflows.events import EventType

# Fields of an order (detail and list row) only admins see.
ADMIN_ORDER_FIELDS = frozenset(
    {"paymentIntentId", "correlationId", "needsAttention", "attentionReason"}
)
# Event fields only admins see (the chain's correlation id ties it to logs and tasks).
ADMIN_EVENT_FIELDS = frozenset({"correlationId"})
# Operations' events: retries, compensations, operator flags and resumes.
ADMIN_ONLY_EVENTS = frozenset(
    {
        EventType.ORDER_STEP_RETRYING.value,
        EventType.ORDER_COMPENSATED.value,
        EventType.ORDER_NEEDS_ATTENTION.value,
        EventType.ORDER_RESUMED.value,
    }
)
# Event data a customer may read; everything else (task names, intent/refund ids, errors,
# provider text) stays with admins. ``reason`` and ``actor`` are translated, not copied.
CUSTOMER_EVENT_DATA = frozenset(
    {
        "orderNumber",
        "from",
        "to",
        "totalCents",
        "amountCents",
        "currency",
        "itemCount",
        "carrier",
        "trackingNumber",
        "estimatedDelivery",
        "nextAction",
        "changed",
    }
)


def status_message(order: Order) -> str | None:
    """The order's status reason as the customer reads it (admins get it too, beside the raw)."""
    actor = (order.history or [{}])[-1].get("actor") if order.history else None
    return customer_reason(order.status_reason, status=order.status, actor=actor)


def history_view(order: Order, *, admin: bool) -> list[dict[str, Any]]:
    entries = history_public(order)
    if admin:
        return entries
    return [
        {
            "status": e["status"],
            "at": e["at"],
            "reason": customer_reason(e["reason"], status=e["status"], actor=e["actor"]),
            "actor": customer_actor(e["actor"]),
        }
        for e in entries
        # Operator flags are not a step of the customer's order.
        if not (e["reason"] or "").startswith("needs attention")
    ]


def order_view(order: Order, keyring: KeyRing | None, *, admin: bool) -> dict[str, Any]:
    """An order for its owner (admin=False) or an admin."""
    body = order_public(order, keyring)
    body["statusMessage"] = status_message(order)
    if admin:
        return body
    for name in ADMIN_ORDER_FIELDS:
        body.pop(name, None)
    body["statusReason"] = body["statusMessage"]
    body["history"] = history_view(order, admin=False)
    return body


def summary_view(order: Order, *, admin: bool, customer: dict[str, Any] | None = None) -> dict:
    """A list row; admins also get who placed it (``customer``: email and name)."""
    row = order_summary(order)
    row["statusMessage"] = status_message(order)
    if admin:
        row["customer"] = customer or {"email": order.user_email, "name": None}
        return row
    for name in ADMIN_ORDER_FIELDS:
        row.pop(name, None)
    row["statusReason"] = row["statusMessage"]
    return row


def event_view(event: dict[str, Any], *, admin: bool) -> dict[str, Any] | None:
    """A public event (store or bus shape) for an admin, or for its owner; None: not shown."""
    if admin:
        return event
    if event.get("type") in ADMIN_ONLY_EVENTS:
        return None
    data = event.get("data") or {}
    shown = {k: v for k, v in data.items() if k in CUSTOMER_EVENT_DATA}
    if "reason" in data:
        shown["reason"] = customer_reason(
            data.get("reason"), status=data.get("to"), actor=data.get("actor")
        )
    if "actor" in data:
        shown["actor"] = customer_actor(data.get("actor"))
    out = {k: v for k, v in event.items() if k not in ADMIN_EVENT_FIELDS}
    out["data"] = shown
    return out


def events_view(events: list[dict[str, Any]], *, admin: bool) -> list[dict[str, Any]]:
    if admin:
        return events
    return [v for e in events if (v := event_view(e, admin=False)) is not None]


def payment_row(order: Order, *, admin: bool) -> dict[str, Any]:
    """One row of the payments history: admins also see the intent and refund ids."""
    refunds = order.refunds or []
    row = {
        "orderId": str(order.id),
        "orderNumber": order.order_number,
        "paymentIntentId": order.payment_intent_id,
        "status": order.status,
        "statusMessage": status_message(order),
        "amountCents": order.total_cents,
        "paidCents": order.paid_cents or 0,
        "refundedCents": order.refunded_cents or 0,
        "currency": order.currency,
        "refunds": refunds,
        "createdAt": iso_utc(order.created_at),
    }
    if not admin:
        row.pop("paymentIntentId")
        row["refunds"] = [{"amountCents": r.get("amountCents")} for r in refunds]
    return row
