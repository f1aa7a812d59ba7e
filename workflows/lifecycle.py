"""The order chain as data: its steps, what each runs from, and how each is undone. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from workflows.states import PAID_STATUSES, OrderStatus

# Task names are stable strings so Flower, the CLI and the chain builder agree on them.
RELEASE_INVENTORY_TASK = "orders.release_inventory"
CANCEL_INTENT_TASK = "payments.cancel_intent"
REFUND_PAYMENT_TASK = "payments.refund_payment"


@dataclass(frozen=True)
class Step:
    """One link of the order chain.

    ``runs_from`` is the set of statuses the step acts on; ``compensation`` is the task
    name of its undo, or None when nothing can be undone (shipping).
    """

    name: str
    task_name: str
    runs_from: frozenset[OrderStatus]
    compensation: str | None


STEPS: tuple[Step, ...] = (
    Step(
        name="reserve_inventory",
        task_name="orders.reserve_inventory",
        runs_from=frozenset({OrderStatus.PENDING}),
        compensation=RELEASE_INVENTORY_TASK,
    ),
    Step(
        name="create_payment_intent",
        task_name="payments.create_payment_intent",
        runs_from=frozenset({OrderStatus.RESERVED}),
        compensation=CANCEL_INTENT_TASK,
    ),
    Step(
        name="confirm_payment",
        task_name="payments.confirm_payment",
        runs_from=frozenset({OrderStatus.PAYMENT_PENDING}),
        compensation=REFUND_PAYMENT_TASK,
    ),
    Step(
        name="ship_order",
        task_name="orders.ship_order",
        runs_from=frozenset({OrderStatus.CONFIRMED}),
        compensation=None,
    ),
)

STEP_SUCCESS_STATUS: Mapping[str, OrderStatus] = MappingProxyType(
    {
        "reserve_inventory": OrderStatus.RESERVED,
        "create_payment_intent": OrderStatus.PAYMENT_PENDING,
        "confirm_payment": OrderStatus.CONFIRMED,
        "ship_order": OrderStatus.SHIPPED,
    }
)


def remaining_steps(status: OrderStatus) -> tuple[Step, ...]:
    """Return the steps still to run for an order in ``status``, in chain order.

    The chain resumes at the first step that runs from ``status``. requires_action,
    shipped and every finished status return ``()``: requires_action waits for the
    webhook or reconciliation, and delivery is a timestamp a beat sweep acts on.
    """
    for index, step in enumerate(STEPS):
        if status in step.runs_from:
            return STEPS[index:]
    return ()


def compensations_for(
    status: OrderStatus, *, paid: bool, has_intent: bool, has_hold: bool
) -> tuple[str, ...]:
    """Return the compensation task names to run when an order in ``status`` is cancelled or fails.

    ``paid`` means money was captured and not yet refunded; a status in ``PAID_STATUSES``
    implies it. A captured payment is refunded, an uncaptured intent is cancelled, and a
    stock hold is released. Payment comes first so a slow stock release never leaves the
    customer charged for longer.
    """
    names: list[str] = []
    if paid or status in PAID_STATUSES:
        names.append(REFUND_PAYMENT_TASK)
    elif has_intent:
        names.append(CANCEL_INTENT_TASK)
    if has_hold:
        names.append(RELEASE_INVENTORY_TASK)
    return tuple(names)
