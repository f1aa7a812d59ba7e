"""Order statuses and the one transition table that decides every move. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

from workflows.errors import InvalidTransition


class OrderStatus(StrEnum):
    """Every status an order can be in; the only spelling used anywhere in the service."""

    PENDING = "pending"
    RESERVED = "reserved"
    PAYMENT_PENDING = "payment_pending"
    REQUIRES_ACTION = "requires_action"
    CONFIRMED = "confirmed"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    FAILED = "failed"
    REFUNDED = "refunded"


_S = OrderStatus

# Read-only view so no caller can widen the table at runtime.
ALLOWED: Mapping[OrderStatus, frozenset[OrderStatus]] = MappingProxyType(
    {
        _S.PENDING: frozenset({_S.RESERVED, _S.CANCELLED, _S.FAILED}),
        _S.RESERVED: frozenset({_S.PAYMENT_PENDING, _S.CANCELLED, _S.FAILED}),
        _S.PAYMENT_PENDING: frozenset({_S.CONFIRMED, _S.REQUIRES_ACTION, _S.CANCELLED, _S.FAILED}),
        # Back to payment_pending when the customer retries with a new card.
        _S.REQUIRES_ACTION: frozenset({_S.CONFIRMED, _S.PAYMENT_PENDING, _S.CANCELLED, _S.FAILED}),
        _S.CONFIRMED: frozenset({_S.SHIPPED, _S.CANCELLED, _S.FAILED, _S.REFUNDED}),
        _S.SHIPPED: frozenset({_S.DELIVERED, _S.REFUNDED}),
        _S.DELIVERED: frozenset({_S.REFUNDED}),
        _S.CANCELLED: frozenset(),
        _S.FAILED: frozenset(),
        _S.REFUNDED: frozenset(),
    }
)

# No chain step is left to run (delivered may still be refunded).
FINISHED: frozenset[OrderStatus] = frozenset({_S.DELIVERED, _S.CANCELLED, _S.FAILED, _S.REFUNDED})

# Can never move again.
TERMINAL: frozenset[OrderStatus] = frozenset({_S.CANCELLED, _S.FAILED, _S.REFUNDED})

# Before shipped and not finished: a customer or admin may still cancel.
CANCELLABLE: frozenset[OrderStatus] = frozenset(
    {_S.PENDING, _S.RESERVED, _S.PAYMENT_PENDING, _S.REQUIRES_ACTION, _S.CONFIRMED}
)

# The payment was captured in these statuses.
PAID_STATUSES: frozenset[OrderStatus] = frozenset({_S.CONFIRMED, _S.SHIPPED, _S.DELIVERED})

# A stock hold should exist in these statuses (shipping turns the hold into sold).
HOLDS_STOCK: frozenset[OrderStatus] = frozenset(
    {_S.RESERVED, _S.PAYMENT_PENDING, _S.REQUIRES_ACTION, _S.CONFIRMED}
)

# An intent's outcome can still move the order (webhooks, confirm, the payments sweep).
PAYABLE: frozenset[OrderStatus] = frozenset({_S.PAYMENT_PENDING, _S.REQUIRES_ACTION})

# Not paid and not finished: what the stock-hoarding limits count (api/order_limits.py).
UNPAID: frozenset[OrderStatus] = frozenset(
    {_S.PENDING, _S.RESERVED, _S.PAYMENT_PENDING, _S.REQUIRES_ACTION}
)

# The chain is paused until the customer acts (3-D Secure).
WAITING_ON_CUSTOMER: frozenset[OrderStatus] = frozenset({_S.REQUIRES_ACTION})


def can_transition(frm: OrderStatus, to: OrderStatus) -> bool:
    """Return True if the transition table allows moving an order from ``frm`` to ``to``."""
    return to in ALLOWED.get(frm, frozenset())


def ensure_transition(frm: OrderStatus, to: OrderStatus) -> None:
    """Raise :class:`InvalidTransition` naming both statuses unless ``frm`` → ``to`` is allowed."""
    if not can_transition(frm, to):
        allowed = ", ".join(sorted(ALLOWED.get(frm, frozenset()))) or "nothing"
        raise InvalidTransition(
            f"cannot move an order from {frm!s} to {to!s} (from {frm!s} only to: {allowed})"
        )


def parse_status(value: str) -> OrderStatus:
    """Parse a status from outside (query string, stored document) into an :class:`OrderStatus`.

    Surrounding whitespace and letter case are ignored; anything else raises ``ValueError``
    listing the allowed values.
    """
    if isinstance(value, str):
        normalized = value.strip().lower()
        for status in OrderStatus:
            if status.value == normalized:
                return status
    allowed = ", ".join(status.value for status in OrderStatus)
    raise ValueError(f"unknown order status {value!r}; allowed: {allowed}")
