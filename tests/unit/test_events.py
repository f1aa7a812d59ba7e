"""Event envelopes, the events each move emits, and causal chaining."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from workflows.errors import InvalidTransition
from workflows.events import (
    EventType,
    chain_causation,
    created_events,
    make_event,
    transition_events,
)
from workflows.states import ALLOWED, OrderStatus

E = EventType
S = OrderStatus

ALLOWED_PAIRS = [(frm, to) for frm, targets in ALLOWED.items() for to in sorted(targets)]


@pytest.mark.parametrize(
    ("member", "value"),
    [
        (E.USER_CREATED, "user.created"),
        (E.USER_UPDATED, "user.updated"),
        (E.USER_DELETED, "user.deleted"),
        (E.USER_LOGIN, "user.login"),
        (E.ORDER_CREATED, "order.created"),
        (E.ORDER_UPDATED, "order.updated"),
        (E.ORDER_CANCELLED, "order.cancelled"),
        (E.ORDER_COMPLETED, "order.completed"),
        (E.ORDER_SHIPPED, "order.shipped"),
        (E.ORDER_DELIVERED, "order.delivered"),
        (E.ORDER_RESERVED, "order.reserved"),
        (E.ORDER_PAYMENT_PENDING, "order.payment_pending"),
        (E.ORDER_CONFIRMED, "order.confirmed"),
        (E.ORDER_FAILED, "order.failed"),
        (E.ORDER_REFUNDED, "order.refunded"),
        (E.ORDER_STEP_RETRYING, "order.step.retrying"),
        (E.ORDER_COMPENSATED, "order.compensated"),
        (E.ORDER_NEEDS_ATTENTION, "order.needs_attention"),
        (E.ORDER_RESUMED, "order.resumed"),
        (E.PAYMENT_PROCESSED, "order.payment.processed"),
        (E.PAYMENT_FAILED, "order.payment.failed"),
        (E.PAYMENT_REFUNDED, "order.payment.refunded"),
        (E.PAYMENT_REQUIRES_ACTION, "order.payment.requires_action"),
        (E.INVENTORY_UPDATED, "inventory.updated"),
        (E.INVENTORY_LOW_STOCK, "inventory.low_stock"),
        (E.INVENTORY_OUT_OF_STOCK, "inventory.out_of_stock"),
        (E.SYSTEM_STARTUP, "system.startup"),
        (E.SYSTEM_SHUTDOWN, "system.shutdown"),
        (E.SYSTEM_ERROR, "system.error"),
        (E.SYSTEM_HEALTH_CHECK, "system.health_check"),
        (E.RECONCILIATION_RUN, "system.reconciliation"),
    ],
)
def test_event_type_values(member: EventType, value: str) -> None:
    assert member.value == value


def test_every_event_type_builds_an_envelope() -> None:
    for event_type in EventType:
        event = make_event(event_type, aggregate_id="a1", aggregate_version=0, correlation_id=None)
        assert event["aggregateType"] == event_type.value.split(".")[0]


def test_make_event_envelope() -> None:
    at = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    data = {"items": [{"sku": "SKU-1", "quantity": 2}]}
    event = make_event(
        E.ORDER_CREATED,
        aggregate_id="o1",
        aggregate_version=1,
        correlation_id="corr-1",
        causation_id="cause-1",
        user_id="u1",
        data=data,
        occurred_at=at,
    )
    assert list(event) == [
        "eventId",
        "type",
        "aggregateType",
        "aggregateId",
        "aggregateVersion",
        "correlationId",
        "causationId",
        "occurredAt",
        "userId",
        "data",
    ]
    assert uuid.UUID(event["eventId"]).version == 4
    assert event["type"] == "order.created"
    assert type(event["type"]) is str
    assert event["aggregateType"] == "order"
    assert event["aggregateId"] == "o1"
    assert event["aggregateVersion"] == 1
    assert event["correlationId"] == "corr-1"
    assert event["causationId"] == "cause-1"
    assert event["occurredAt"] == at
    assert event["userId"] == "u1"
    assert event["data"] == data
    # The envelope holds a copy: later edits by the caller do not reach it.
    data["items"][0]["quantity"] = 99
    data["extra"] = True
    assert event["data"] == {"items": [{"sku": "SKU-1", "quantity": 2}]}


def test_make_event_defaults() -> None:
    before = datetime.now(UTC)
    event = make_event(
        "inventory.low_stock", aggregate_id="SKU-1", aggregate_version=3, correlation_id=None
    )
    after = datetime.now(UTC)
    assert event["type"] == "inventory.low_stock"
    assert event["aggregateType"] == "inventory"
    assert event["causationId"] is None
    assert event["userId"] is None
    assert event["data"] == {}
    assert event["occurredAt"].utcoffset() == timedelta(0)
    assert before <= event["occurredAt"] <= after


def test_make_event_ids_are_unique_unless_given() -> None:
    first = make_event(E.USER_LOGIN, aggregate_id="u1", aggregate_version=1, correlation_id="c")
    second = make_event(E.USER_LOGIN, aggregate_id="u1", aggregate_version=1, correlation_id="c")
    assert first["eventId"] != second["eventId"]
    fixed = make_event(
        E.USER_LOGIN, aggregate_id="u1", aggregate_version=1, correlation_id="c", event_id="e-1"
    )
    assert fixed["eventId"] == "e-1"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (datetime(2026, 1, 1, 12, 0), datetime(2026, 1, 1, 12, 0, tzinfo=UTC)),
        (
            datetime(2026, 1, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))),
            datetime(2026, 1, 1, 12, 0, tzinfo=UTC),
        ),
    ],
)
def test_make_event_occurred_at_is_utc(given: datetime, expected: datetime) -> None:
    event = make_event(
        E.SYSTEM_STARTUP,
        aggregate_id="s",
        aggregate_version=0,
        correlation_id=None,
        occurred_at=given,
    )
    assert event["occurredAt"] == expected
    assert event["occurredAt"].tzinfo is UTC


@pytest.mark.parametrize("bad", ["order.unknown", "payment.created", ""])
def test_make_event_rejects_unknown_type(bad: str) -> None:
    with pytest.raises(ValueError, match="is not a valid EventType"):
        make_event(bad, aggregate_id="o1", aggregate_version=1, correlation_id=None)


def test_make_event_rejects_bad_aggregate() -> None:
    with pytest.raises(ValueError, match="aggregate_id"):
        make_event(E.ORDER_CREATED, aggregate_id="", aggregate_version=1, correlation_id=None)
    with pytest.raises(ValueError, match="aggregate_version"):
        make_event(E.ORDER_CREATED, aggregate_id="o1", aggregate_version=-1, correlation_id=None)


def test_created_events() -> None:
    assert created_events() == (E.ORDER_CREATED,)


EXPECTED_BY_TARGET: dict[OrderStatus, tuple[EventType, ...]] = {
    S.RESERVED: (E.ORDER_RESERVED,),
    S.PAYMENT_PENDING: (E.ORDER_PAYMENT_PENDING,),
    S.REQUIRES_ACTION: (E.PAYMENT_REQUIRES_ACTION,),
    S.CONFIRMED: (E.PAYMENT_PROCESSED, E.ORDER_CONFIRMED),
    S.SHIPPED: (E.ORDER_SHIPPED,),
    S.DELIVERED: (E.ORDER_DELIVERED, E.ORDER_COMPLETED),
    S.CANCELLED: (E.ORDER_CANCELLED,),
    S.FAILED: (E.ORDER_FAILED,),
    S.REFUNDED: (E.PAYMENT_REFUNDED, E.ORDER_REFUNDED),
}


@pytest.mark.parametrize(("frm", "to"), ALLOWED_PAIRS, ids=str)
def test_transition_events_for_every_allowed_move(frm: OrderStatus, to: OrderStatus) -> None:
    events = transition_events(frm, to)
    expected = EXPECTED_BY_TARGET[to]
    if to is S.FAILED and frm in (S.PAYMENT_PENDING, S.REQUIRES_ACTION):
        expected = (E.PAYMENT_FAILED, *expected)
    assert events == (*expected, E.ORDER_UPDATED)
    assert events[-1] is E.ORDER_UPDATED
    assert events.count(E.ORDER_UPDATED) == 1


@pytest.mark.parametrize(
    ("frm", "to", "expected"),
    [
        (S.PENDING, S.FAILED, (E.ORDER_FAILED, E.ORDER_UPDATED)),
        (S.RESERVED, S.FAILED, (E.ORDER_FAILED, E.ORDER_UPDATED)),
        (S.PAYMENT_PENDING, S.FAILED, (E.PAYMENT_FAILED, E.ORDER_FAILED, E.ORDER_UPDATED)),
        (S.REQUIRES_ACTION, S.FAILED, (E.PAYMENT_FAILED, E.ORDER_FAILED, E.ORDER_UPDATED)),
        (S.CONFIRMED, S.FAILED, (E.ORDER_FAILED, E.ORDER_UPDATED)),
        (S.REQUIRES_ACTION, S.CONFIRMED, (E.PAYMENT_PROCESSED, E.ORDER_CONFIRMED, E.ORDER_UPDATED)),
        (S.SHIPPED, S.DELIVERED, (E.ORDER_DELIVERED, E.ORDER_COMPLETED, E.ORDER_UPDATED)),
    ],
)
def test_transition_events_examples(
    frm: OrderStatus, to: OrderStatus, expected: tuple[EventType, ...]
) -> None:
    assert transition_events(frm, to) == expected


@pytest.mark.parametrize(
    ("frm", "to"),
    [
        (S.SHIPPED, S.CANCELLED),
        (S.CANCELLED, S.PENDING),
        (S.DELIVERED, S.SHIPPED),
        (S.PENDING, S.CONFIRMED),
    ],
)
def test_transition_events_refuses_disallowed_moves(frm: OrderStatus, to: OrderStatus) -> None:
    with pytest.raises(InvalidTransition):
        transition_events(frm, to)


def _events(types: tuple[EventType, ...]) -> list[dict]:
    return [
        make_event(
            t, aggregate_id="o1", aggregate_version=2, correlation_id="corr", event_id=f"e{i}"
        )
        for i, t in enumerate(types)
    ]


def test_chain_causation() -> None:
    events = _events(transition_events(S.PAYMENT_PENDING, S.CONFIRMED))
    result = chain_causation(events, "task-123")
    assert result is events
    assert [e["eventId"] for e in result] == ["e0", "e1", "e2"]
    assert [e["causationId"] for e in result] == ["task-123", "e0", "e1"]
    assert [e["type"] for e in result] == [
        "order.payment.processed",
        "order.confirmed",
        "order.updated",
    ]


def test_chain_causation_without_a_cause() -> None:
    events = chain_causation(_events((E.ORDER_CANCELLED, E.ORDER_UPDATED)), None)
    assert [e["causationId"] for e in events] == [None, "e0"]


def test_chain_causation_empty() -> None:
    assert chain_causation([], "x") == []
