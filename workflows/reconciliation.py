"""Pure decisions behind the beat reconciliation jobs; the jobs themselves do the I/O."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from workflows.lifecycle import remaining_steps
from workflows.states import WAITING_ON_CUSTOMER, OrderStatus

StuckAction = Literal["nothing", "resume", "needs_attention"]

# Only these statuses have a payment in flight worth comparing with the gateway.
_PAYMENT_STATUSES: frozenset[OrderStatus] = frozenset(
    {OrderStatus.PAYMENT_PENDING, OrderStatus.REQUIRES_ACTION}
)


class PaymentAction(StrEnum):
    """What the payments sweep should do with one order."""

    NOTHING = "nothing"
    MARK_CONFIRMED = "mark_confirmed"
    FAIL = "fail"
    TIMEOUT = "timeout"


def payment_action(
    order_status: OrderStatus,
    intent_status: str | None,
    *,
    age_seconds: float,
    payment_window_seconds: float,
    has_payment_method: bool,
) -> PaymentAction:
    """Decide what to do with an order by comparing it with its intent's current state.

    ``intent_status`` is Stripe's spelling, or None when no intent was ever created.
    ``age_seconds`` is how long the order has been waiting for its payment. First match wins:

    1. order not payment_pending/requires_action → NOTHING (not this sweep's business).
    2. intent ``succeeded`` (or ``requires_capture``, authorized under manual capture) →
       MARK_CONFIRMED, even past the window: the money is taken (or held).
    3. intent ``canceled`` → FAIL (the intent can never succeed now).
    4. intent ``requires_payment_method`` with a payment method on the order → FAIL:
       the method was tried and declined.
    5. past the payment window (age > window) → TIMEOUT.
    6. anything else → NOTHING: waiting for the customer, 3-D Secure, ``processing``, or
       confirm_payment (intent ``requires_confirmation``, or none yet).

    A chain that died before confirming is not this sweep's to resume: from Mongo it looks
    the same as one merely queued, and ``stuck_action`` decides it once, for every status
    (the resume is recorded, the next waits a whole threshold, the sweep stands back while
    the queues hold a backlog, the order is flagged after ``max_resumes``).
    """
    if order_status not in _PAYMENT_STATUSES:
        return PaymentAction.NOTHING
    if intent_status in ("succeeded", "requires_capture"):  # paid, or authorized (manual)
        return PaymentAction.MARK_CONFIRMED
    if intent_status == "canceled":
        return PaymentAction.FAIL
    if intent_status == "requires_payment_method" and has_payment_method:
        return PaymentAction.FAIL
    if age_seconds > payment_window_seconds:
        return PaymentAction.TIMEOUT
    return PaymentAction.NOTHING


def stuck_action(
    status: OrderStatus,
    *,
    idle_seconds: float,
    threshold_seconds: float,
    resumes_so_far: int,
    max_resumes: int,
    waiting_on_customer: bool,
) -> StuckAction:
    """Decide what the stuck-orders sweep does with an order untouched for ``idle_seconds``.

    ``nothing`` when no chain step is left (shipped, finished, requires_action), when the
    order waits on the customer, or when it has been idle for less than the threshold;
    ``needs_attention`` once ``max_resumes`` resumes have not moved it; ``resume`` otherwise.
    """
    if not remaining_steps(status):
        return "nothing"
    if waiting_on_customer or status in WAITING_ON_CUSTOMER:
        return "nothing"
    if idle_seconds < threshold_seconds:
        return "nothing"
    if resumes_so_far >= max_resumes:
        return "needs_attention"
    return "resume"


def delivery_due(shipped_at: datetime | None, now: datetime, delay_seconds: float) -> bool:
    """Return True once ``delay_seconds`` have passed since ``shipped_at`` (never if unshipped).

    Naive datetimes are taken as UTC, as MongoDB returns them.
    """
    if shipped_at is None:
        return False
    return (_as_utc(now) - _as_utc(shipped_at)).total_seconds() >= delay_seconds


def _as_utc(moment: datetime) -> datetime:
    # Comparing naive with aware datetimes raises, and Mongo hands back naive UTC.
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
