"""Event handlers: one registry, each handler idempotent (it may run many times per event).

A handler is a function of the public event dict, registered with the event types it wants:

    @register("order_stats", types={"order.created", "order.updated"})
    def order_stats(event: dict) -> None: ...

The dispatcher runs each interested handler as its own retried Celery task
(``events.run_handler``). Extra handler modules (plugins, tests) are named in the
``EVENT_HANDLER_MODULES`` setting and imported by :func:`load_plugins`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from core.settings import get_settings
from models.notification import Notification
from models.order import Order
from models.order_stats import OrderStats
from models.user import User
from workflows.customer_text import customer_reason
from workflows.events import EventType

E = EventType
HandlerFn = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class HandlerSpec:
    name: str
    fn: HandlerFn
    types: frozenset[str] | None  # None: every event type
    max_retries: int | None = None  # None: settings.retry_max
    # It refreshes from the aggregate's current state, so in one dispatch it runs once per
    # aggregate (on the last event it wants) instead of once per event.
    latest_only: bool = False

    def wants(self, event_type: str) -> bool:
        return self.types is None or event_type in self.types


_REGISTRY: dict[str, HandlerSpec] = {}


def register(
    name: str,
    *,
    types: Iterable[str] | None,
    max_retries: int | None = None,
    latest_only: bool = False,
) -> Callable[[HandlerFn], HandlerFn]:
    """Decorator adding a handler to the registry under a stable name."""

    def add(fn: HandlerFn) -> HandlerFn:
        if name in _REGISTRY and _REGISTRY[name].fn is not fn:
            raise ValueError(f"event handler {name!r} is already registered")
        wanted = frozenset(str(t) for t in types) if types is not None else None
        _REGISTRY[name] = HandlerSpec(name, fn, wanted, max_retries, latest_only)
        return fn

    return add


def get_handler(name: str) -> HandlerSpec | None:
    return _REGISTRY.get(name)


def handlers_for(event_type: str) -> list[HandlerSpec]:
    return [spec for spec in _REGISTRY.values() if spec.wants(event_type)]


def subscriptions() -> dict[str, list[str] | None]:
    """Handler name -> the event types it handles (None: all), for the API and the CLI."""
    return {
        name: sorted(spec.types) if spec.types is not None else None
        for name, spec in sorted(_REGISTRY.items())
    }


# Handlers of ours that live in their own module (they register on import).
BUILTIN_HANDLER_MODULES = ("tasks.outgoing_webhooks", "tasks.mail")


def load_plugins() -> list[str]:
    """Import the built-in handler modules and the extra ones named in settings."""
    names = [m.strip() for m in get_settings().event_handler_modules.split(",") if m.strip()]
    for module in (*BUILTIN_HANDLER_MODULES, *names):
        importlib.import_module(module)
    return names


# -- customer notifications -------------------------------------------------------------------

_CUSTOMER_MESSAGES: dict[str, tuple[str, str]] = {
    E.ORDER_CREATED: ("Order {number} received", "We have your order and are processing it."),
    E.ORDER_CONFIRMED: ("Order {number} confirmed", "Your payment went through."),
    E.ORDER_SHIPPED: ("Order {number} shipped", "Your order is on its way."),
    E.ORDER_DELIVERED: ("Order {number} delivered", "Your order has been delivered."),
    E.ORDER_CANCELLED: ("Order {number} cancelled", "Your order was cancelled."),
    E.ORDER_FAILED: ("Order {number} could not be completed", "Your order failed."),
    E.ORDER_REFUNDED: ("Order {number} refunded", "Your refund is on its way."),
    E.PAYMENT_FAILED: ("Payment failed for order {number}", "Your payment did not go through."),
    E.PAYMENT_REQUIRES_ACTION: (
        "Action needed for order {number}",
        "Your bank asks you to confirm the payment.",
    ),
}


def _order_body(event: dict[str, Any], default: str) -> str:
    data = event.get("data") or {}
    # In the customer's words: never a task name, an intent id or the provider's text.
    extra = customer_reason(data.get("reason"), status=data.get("to"), actor=data.get("actor"))
    extra = extra or ""
    if event["type"] == E.ORDER_SHIPPED and data.get("trackingNumber"):
        extra = f"Tracking number {data['trackingNumber']}."
    return f"{default} {extra}".strip()


@register("notifications", types=_CUSTOMER_MESSAGES)
def notify_customer(event: dict[str, Any]) -> None:
    """Tell the order's owner about the moves they care about."""
    user_id = event.get("userId")
    if not user_id:
        return
    data = event.get("data") or {}
    number = data.get("orderNumber") or event["aggregateId"]
    title, body = _CUSTOMER_MESSAGES[event["type"]]
    Notification.add_many(
        [
            {
                "userId": user_id,
                "eventId": event["eventId"],
                "type": event["type"],
                "title": title.format(number=number),
                "body": _order_body(event, body),
                "data": {"orderId": event["aggregateId"], "orderNumber": number},
            }
        ]
    )


# -- low-stock alerts for admins --------------------------------------------------------------


def admin_ids() -> list[str]:
    return [str(u.id) for u in User.objects(role="admin", active=True).only("id")]


@register("low_stock_alerts", types={E.INVENTORY_LOW_STOCK, E.INVENTORY_OUT_OF_STOCK})
def alert_admins_low_stock(event: dict[str, Any]) -> None:
    """One notification per admin when a product runs low or out."""
    data = event.get("data") or {}
    sku = data.get("sku") or event["aggregateId"]
    if event["type"] == E.INVENTORY_OUT_OF_STOCK:
        title, body = f"{sku} is out of stock", "Nothing left to sell; restock it."
    else:
        title = f"{sku} is running low"
        body = f"{data.get('available')} left (threshold {data.get('threshold')})."
    Notification.add_many(
        [
            {
                "userId": admin,
                "eventId": event["eventId"],
                "type": event["type"],
                "title": title,
                "body": body,
                "data": {"sku": sku, "available": data.get("available")},
            }
            for admin in admin_ids()
        ]
    )


# -- per-user order statistics ----------------------------------------------------------------


@register(
    "order_stats", types={E.ORDER_CREATED, E.ORDER_UPDATED, E.PAYMENT_REFUNDED}, latest_only=True
)
def project_order_stats(event: dict[str, Any]) -> None:
    """Refresh the owner's projection entry for this order from the order's current state."""
    order = Order.get(event["aggregateId"])
    if order is None or not order.user_id:
        return
    OrderStats.apply(
        order.user_id,
        str(order.id),
        int(order.version),
        {
            "status": order.status,
            "totalCents": int(order.total_cents or 0),
            "paidCents": int(order.paid_cents or 0),
            "refundedCents": int(order.refunded_cents or 0),
            "currency": order.currency,
        },
    )
