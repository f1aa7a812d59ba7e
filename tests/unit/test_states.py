"""The transition table and status sets, checked pair by pair."""

from __future__ import annotations

import itertools

import pytest

from workflows.errors import InvalidTransition
from workflows.states import (
    ALLOWED,
    CANCELLABLE,
    FINISHED,
    HOLDS_STOCK,
    PAID_STATUSES,
    TERMINAL,
    WAITING_ON_CUSTOMER,
    OrderStatus,
    can_transition,
    ensure_transition,
    parse_status,
)

S = OrderStatus

# Written out independently of the module so a changed table fails here.
EXPECTED_ALLOWED: dict[OrderStatus, set[OrderStatus]] = {
    S.PENDING: {S.RESERVED, S.CANCELLED, S.FAILED},
    S.RESERVED: {S.PAYMENT_PENDING, S.CANCELLED, S.FAILED},
    S.PAYMENT_PENDING: {S.CONFIRMED, S.REQUIRES_ACTION, S.CANCELLED, S.FAILED},
    S.REQUIRES_ACTION: {S.CONFIRMED, S.PAYMENT_PENDING, S.CANCELLED, S.FAILED},
    S.CONFIRMED: {S.SHIPPED, S.CANCELLED, S.FAILED, S.REFUNDED},
    S.SHIPPED: {S.DELIVERED, S.REFUNDED},
    S.DELIVERED: {S.REFUNDED},
    S.CANCELLED: set(),
    S.FAILED: set(),
    S.REFUNDED: set(),
}

ALL_PAIRS = list(itertools.product(OrderStatus, OrderStatus))


def test_status_values() -> None:
    assert [s.value for s in OrderStatus] == [
        "pending",
        "reserved",
        "payment_pending",
        "requires_action",
        "confirmed",
        "shipped",
        "delivered",
        "cancelled",
        "failed",
        "refunded",
    ]


def test_table_covers_every_status_and_matches_design() -> None:
    assert set(ALLOWED) == set(OrderStatus)
    assert {k: set(v) for k, v in ALLOWED.items()} == EXPECTED_ALLOWED


def test_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        ALLOWED[S.CANCELLED] = frozenset({S.PENDING})  # type: ignore[index]


@pytest.mark.parametrize(("frm", "to"), ALL_PAIRS, ids=lambda s: str(s))
def test_every_pair(frm: OrderStatus, to: OrderStatus) -> None:
    expected = to in EXPECTED_ALLOWED[frm]
    assert can_transition(frm, to) is expected
    if expected:
        assert ensure_transition(frm, to) is None
    else:
        with pytest.raises(InvalidTransition) as caught:
            ensure_transition(frm, to)
        assert str(frm) in str(caught.value)
        assert str(to) in str(caught.value)
        assert caught.value.code == "INVALID_TRANSITION"


def test_nothing_moves_back_to_pending_or_to_itself() -> None:
    for status in OrderStatus:
        assert not can_transition(status, S.PENDING)
        assert not can_transition(status, status)


def test_status_sets() -> None:
    assert {S.DELIVERED, S.CANCELLED, S.FAILED, S.REFUNDED} == FINISHED
    assert {S.CANCELLED, S.FAILED, S.REFUNDED} == TERMINAL
    assert {S.PENDING, S.RESERVED, S.PAYMENT_PENDING, S.REQUIRES_ACTION, S.CONFIRMED} == CANCELLABLE
    assert {S.CONFIRMED, S.SHIPPED, S.DELIVERED} == PAID_STATUSES
    assert {S.RESERVED, S.PAYMENT_PENDING, S.REQUIRES_ACTION, S.CONFIRMED} == HOLDS_STOCK
    assert {S.REQUIRES_ACTION} == WAITING_ON_CUSTOMER


def test_status_sets_agree_with_table() -> None:
    assert {s for s, targets in ALLOWED.items() if not targets} == TERMINAL
    assert {s for s, targets in ALLOWED.items() if S.CANCELLED in targets} == CANCELLABLE
    assert TERMINAL < FINISHED
    assert {S.DELIVERED} == FINISHED - TERMINAL
    assert not CANCELLABLE & FINISHED


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("pending", S.PENDING),
        ("payment_pending", S.PAYMENT_PENDING),
        (" Requires_Action ", S.REQUIRES_ACTION),
        ("REFUNDED", S.REFUNDED),
        (S.SHIPPED, S.SHIPPED),
    ],
)
def test_parse_status(raw: str, expected: OrderStatus) -> None:
    assert parse_status(raw) is expected


@pytest.mark.parametrize("raw", ["", "canceled", "paid", "payment-pending", "complete"])
def test_parse_status_rejects_unknown(raw: str) -> None:
    with pytest.raises(ValueError, match="unknown order status") as caught:
        parse_status(raw)
    message = str(caught.value)
    assert repr(raw) in message
    for status in OrderStatus:
        assert status.value in message
