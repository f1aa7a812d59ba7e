"""The step list, where a chain resumes, and what undoes what."""

from __future__ import annotations

import itertools

import pytest

from workflows.lifecycle import STEP_SUCCESS_STATUS, STEPS, Step, compensations_for, remaining_steps
from workflows.states import ALLOWED, OrderStatus

S = OrderStatus

RELEASE = "orders.release_inventory"
CANCEL = "payments.cancel_intent"
REFUND = "payments.refund_payment"


def test_steps_in_order() -> None:
    assert [(s.name, s.task_name, set(s.runs_from), s.compensation) for s in STEPS] == [
        ("reserve_inventory", "orders.reserve_inventory", {S.PENDING}, RELEASE),
        ("create_payment_intent", "payments.create_payment_intent", {S.RESERVED}, CANCEL),
        ("confirm_payment", "payments.confirm_payment", {S.PAYMENT_PENDING}, REFUND),
        ("ship_order", "orders.ship_order", {S.CONFIRMED}, None),
    ]


def test_step_is_frozen() -> None:
    with pytest.raises(AttributeError):
        STEPS[0].name = "other"  # type: ignore[misc]
    assert isinstance(STEPS[0], Step)


def test_step_success_status() -> None:
    assert dict(STEP_SUCCESS_STATUS) == {
        "reserve_inventory": S.RESERVED,
        "create_payment_intent": S.PAYMENT_PENDING,
        "confirm_payment": S.CONFIRMED,
        "ship_order": S.SHIPPED,
    }


@pytest.mark.parametrize("step", STEPS, ids=lambda s: s.name)
def test_each_step_success_is_an_allowed_move(step: Step) -> None:
    for frm in step.runs_from:
        assert STEP_SUCCESS_STATUS[step.name] in ALLOWED[frm]


def test_each_step_leads_to_the_next() -> None:
    for step, following in itertools.pairwise(STEPS):
        assert STEP_SUCCESS_STATUS[step.name] in following.runs_from


EXPECTED_REMAINING: dict[OrderStatus, list[str]] = {
    S.PENDING: ["reserve_inventory", "create_payment_intent", "confirm_payment", "ship_order"],
    S.RESERVED: ["create_payment_intent", "confirm_payment", "ship_order"],
    S.PAYMENT_PENDING: ["confirm_payment", "ship_order"],
    S.REQUIRES_ACTION: [],
    S.CONFIRMED: ["ship_order"],
    S.SHIPPED: [],
    S.DELIVERED: [],
    S.CANCELLED: [],
    S.FAILED: [],
    S.REFUNDED: [],
}


def test_remaining_covers_every_status() -> None:
    assert set(EXPECTED_REMAINING) == set(OrderStatus)


@pytest.mark.parametrize(("status", "names"), EXPECTED_REMAINING.items(), ids=str)
def test_remaining_steps(status: OrderStatus, names: list[str]) -> None:
    steps = remaining_steps(status)
    assert isinstance(steps, tuple)
    assert [s.name for s in steps] == names


@pytest.mark.parametrize(
    ("status", "paid", "has_intent", "has_hold", "expected"),
    [
        (S.PENDING, False, False, False, ()),
        (S.PENDING, False, False, True, (RELEASE,)),
        (S.RESERVED, False, False, True, (RELEASE,)),
        (S.PAYMENT_PENDING, False, True, True, (CANCEL, RELEASE)),
        (S.PAYMENT_PENDING, False, True, False, (CANCEL,)),
        (S.REQUIRES_ACTION, False, True, True, (CANCEL, RELEASE)),
        (S.CONFIRMED, True, True, True, (REFUND, RELEASE)),
        # A confirmed order is paid by definition, even if the flag says otherwise.
        (S.CONFIRMED, False, True, True, (REFUND, RELEASE)),
        # Paid orders are refunded, never have their intent cancelled.
        (S.PAYMENT_PENDING, True, True, True, (REFUND, RELEASE)),
        (S.SHIPPED, True, True, False, (REFUND,)),
        (S.FAILED, False, True, True, (CANCEL, RELEASE)),
        (S.CANCELLED, True, True, False, (REFUND,)),
    ],
)
def test_compensations_for(
    status: OrderStatus, paid: bool, has_intent: bool, has_hold: bool, expected: tuple[str, ...]
) -> None:
    assert compensations_for(status, paid=paid, has_intent=has_intent, has_hold=has_hold) == (
        expected
    )


def test_compensation_names_are_the_steps_undo_tasks() -> None:
    undo = {s.compensation for s in STEPS if s.compensation}
    assert undo == {RELEASE, CANCEL, REFUND}
