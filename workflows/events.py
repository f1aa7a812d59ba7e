"""Event vocabulary, the event envelope, and which events each status move emits. Pure."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from workflows.states import OrderStatus, ensure_transition


class EventType(StrEnum):
    """Every event type; the original service's names plus the lifecycle's own."""

    USER_CREATED = "user.created"
    USER_UPDATED = "user.updated"
    USER_DELETED = "user.deleted"
    USER_LOGIN = "user.login"

    ORDER_CREATED = "order.created"
    ORDER_UPDATED = "order.updated"
    ORDER_CANCELLED = "order.cancelled"
    # The original service's name for delivered.
    ORDER_COMPLETED = "order.completed"
    ORDER_SHIPPED = "order.shipped"
    ORDER_DELIVERED = "order.delivered"
    ORDER_RESERVED = "order.reserved"
    ORDER_PAYMENT_PENDING = "order.payment_pending"
    ORDER_CONFIRMED = "order.confirmed"
    ORDER_FAILED = "order.failed"
    ORDER_REFUNDED = "order.refunded"
    ORDER_STEP_RETRYING = "order.step.retrying"
    ORDER_COMPENSATED = "order.compensated"
    ORDER_NEEDS_ATTENTION = "order.needs_attention"
    ORDER_RESUMED = "order.resumed"

    PAYMENT_PROCESSED = "order.payment.processed"
    PAYMENT_FAILED = "order.payment.failed"
    PAYMENT_REFUNDED = "order.payment.refunded"
    PAYMENT_REQUIRES_ACTION = "order.payment.requires_action"
    # Disputes (chargebacks) reported by Stripe: opened, changed (evidence, funds), closed.
    PAYMENT_DISPUTED = "order.payment.disputed"
    PAYMENT_DISPUTE_UPDATED = "order.payment.dispute_updated"
    PAYMENT_DISPUTE_CLOSED = "order.payment.dispute_closed"

    RETURN_REQUESTED = "order.return.requested"
    RETURN_APPROVED = "order.return.approved"
    RETURN_REJECTED = "order.return.rejected"
    RETURN_RECEIVED = "order.return.received"
    RETURN_REFUNDED = "order.return.refunded"

    INVENTORY_UPDATED = "inventory.updated"
    INVENTORY_LOW_STOCK = "inventory.low_stock"
    INVENTORY_OUT_OF_STOCK = "inventory.out_of_stock"

    SYSTEM_STARTUP = "system.startup"
    SYSTEM_SHUTDOWN = "system.shutdown"
    SYSTEM_ERROR = "system.error"
    SYSTEM_HEALTH_CHECK = "system.health_check"
    RECONCILIATION_RUN = "system.reconciliation"


AGGREGATE_TYPES: frozenset[str] = frozenset({"order", "inventory", "user", "system"})

_E = EventType
_S = OrderStatus

# What arriving in a status announces; order.updated is appended to every move.
_ARRIVAL_EVENTS: Mapping[OrderStatus, tuple[EventType, ...]] = {
    _S.RESERVED: (_E.ORDER_RESERVED,),
    _S.PAYMENT_PENDING: (_E.ORDER_PAYMENT_PENDING,),
    _S.REQUIRES_ACTION: (_E.PAYMENT_REQUIRES_ACTION,),
    _S.CONFIRMED: (_E.PAYMENT_PROCESSED, _E.ORDER_CONFIRMED),
    _S.SHIPPED: (_E.ORDER_SHIPPED,),
    _S.DELIVERED: (_E.ORDER_DELIVERED, _E.ORDER_COMPLETED),
    _S.CANCELLED: (_E.ORDER_CANCELLED,),
    _S.FAILED: (_E.ORDER_FAILED,),
    _S.REFUNDED: (_E.PAYMENT_REFUNDED, _E.ORDER_REFUNDED),
}

# Failing while a payment is in flight means the payment itself failed.
_PAYMENT_IN_FLIGHT: frozenset[OrderStatus] = frozenset({_S.PAYMENT_PENDING, _S.REQUIRES_ACTION})


def aggregate_type_of(event_type: EventType | str) -> str:
    """Return the aggregate kind (``order``, ``inventory``, ``user``, ``system``) of a type."""
    prefix = str(event_type).split(".", 1)[0]
    if prefix not in AGGREGATE_TYPES:
        raise ValueError(f"event type {event_type!r} has no known aggregate prefix")
    return prefix


def make_event(
    type: EventType | str,  # the envelope field is called type
    *,
    aggregate_id: str,
    aggregate_version: int,
    correlation_id: str | None,
    causation_id: str | None = None,
    user_id: str | None = None,
    data: Mapping[str, Any] | None = None,
    occurred_at: datetime | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """Build one event envelope with camelCase keys.

    ``type`` must be an :class:`EventType` value (``ValueError`` otherwise). ``occurredAt``
    is a timezone-aware UTC datetime (now if not given; a naive one is taken as UTC, as
    MongoDB returns them). ``data`` is deep-copied so later edits by the caller cannot
    change a recorded event. ``event_id`` defaults to a fresh uuid4.
    """
    event_type = EventType(str(type))
    if not isinstance(aggregate_id, str) or not aggregate_id:
        raise ValueError("aggregate_id must be a non-empty string")
    if isinstance(aggregate_version, bool) or not isinstance(aggregate_version, int):
        raise TypeError("aggregate_version must be an int")
    if aggregate_version < 0:
        raise ValueError(f"aggregate_version must not be negative, got {aggregate_version}")
    return {
        "eventId": event_id if event_id is not None else str(uuid.uuid4()),
        "type": event_type.value,
        "aggregateType": aggregate_type_of(event_type),
        "aggregateId": aggregate_id,
        "aggregateVersion": aggregate_version,
        "correlationId": correlation_id,
        "causationId": causation_id,
        "occurredAt": _as_utc(occurred_at) if occurred_at is not None else datetime.now(UTC),
        "userId": user_id,
        "data": copy.deepcopy(dict(data)) if data is not None else {},
    }


def created_events() -> tuple[EventType, ...]:
    """Return the events an order's creation emits."""
    return (_E.ORDER_CREATED,)


def transition_events(frm: OrderStatus, to: OrderStatus) -> tuple[EventType, ...]:
    """Return the events a move from ``frm`` to ``to`` emits, in order, ending in order.updated.

    Raises :class:`InvalidTransition` for a move the table does not allow.
    """
    ensure_transition(frm, to)
    events: tuple[EventType, ...] = _ARRIVAL_EVENTS[to]
    if to is _S.FAILED and frm in _PAYMENT_IN_FLIGHT:
        events = (_E.PAYMENT_FAILED, *events)
    return (*events, _E.ORDER_UPDATED)


def chain_causation(events: list[dict[str, Any]], causation_id: str | None) -> list[dict[str, Any]]:
    """Link one transition's events into a causal chain, in place, and return the same list.

    The first event is caused by ``causation_id``; each next one by its predecessor.
    """
    previous = causation_id
    for event in events:
        event["causationId"] = previous
        previous = event["eventId"]
    return events


def _as_utc(moment: datetime) -> datetime:
    # Naive datetimes come from MongoDB, which stores UTC.
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
