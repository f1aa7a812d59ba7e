"""Decisions behind the beat reconciliation jobs, one test row per branch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from workflows.reconciliation import PaymentAction, delivery_due, payment_action, stuck_action
from workflows.states import OrderStatus

S = OrderStatus
A = PaymentAction
WINDOW = 900.0


def test_payment_action_values() -> None:
    assert [a.value for a in PaymentAction] == ["nothing", "mark_confirmed", "fail", "timeout"]


@pytest.mark.parametrize(
    ("status", "intent", "age", "has_pm", "expected"),
    [
        # Not a payment status: never this sweep's business.
        (S.PENDING, None, 10_000, True, A.NOTHING),
        (S.RESERVED, "succeeded", 10, True, A.NOTHING),
        (S.CONFIRMED, "succeeded", 10, True, A.NOTHING),
        (S.CANCELLED, "canceled", 10, True, A.NOTHING),
        # Succeeded: confirm, even past the window.
        (S.PAYMENT_PENDING, "succeeded", 10, True, A.MARK_CONFIRMED),
        (S.REQUIRES_ACTION, "succeeded", 10, True, A.MARK_CONFIRMED),
        (S.REQUIRES_ACTION, "succeeded", WINDOW * 10, True, A.MARK_CONFIRMED),
        # Canceled intent: fail.
        (S.PAYMENT_PENDING, "canceled", 10, True, A.FAIL),
        (S.REQUIRES_ACTION, "canceled", 10, False, A.FAIL),
        # A tried payment method was declined: fail.
        (S.PAYMENT_PENDING, "requires_payment_method", 10, True, A.FAIL),
        (S.REQUIRES_ACTION, "requires_payment_method", 10, True, A.FAIL),
        # No payment method yet: the customer still has time.
        (S.PAYMENT_PENDING, "requires_payment_method", 10, False, A.NOTHING),
        # Past the window without success: time out.
        (S.PAYMENT_PENDING, "requires_payment_method", WINDOW + 1, False, A.TIMEOUT),
        (S.REQUIRES_ACTION, "requires_action", WINDOW + 1, True, A.TIMEOUT),
        (S.PAYMENT_PENDING, "processing", WINDOW + 1, True, A.TIMEOUT),
        (S.PAYMENT_PENDING, None, WINDOW + 1, False, A.TIMEOUT),
        # Exactly at the window is not yet past it.
        (S.REQUIRES_ACTION, "requires_action", WINDOW, True, A.NOTHING),
        # No intent yet, or one awaiting confirm_payment: queued or dead, the stuck sweep
        # decides (never re-enqueued here, however long it waits inside the window).
        (S.PAYMENT_PENDING, None, 10, False, A.NOTHING),
        (S.PAYMENT_PENDING, None, 10, True, A.NOTHING),
        (S.REQUIRES_ACTION, None, 10, True, A.NOTHING),
        (S.PAYMENT_PENDING, "requires_confirmation", 10, True, A.NOTHING),
        (S.PAYMENT_PENDING, "requires_confirmation", WINDOW, True, A.NOTHING),
        (S.PAYMENT_PENDING, "requires_confirmation", 10, False, A.NOTHING),
        (S.REQUIRES_ACTION, "requires_confirmation", 10, True, A.NOTHING),
        # Waiting on 3-D Secure or the bank.
        (S.REQUIRES_ACTION, "requires_action", 10, True, A.NOTHING),
        (S.PAYMENT_PENDING, "processing", 10, True, A.NOTHING),
        # Manual capture: an authorization is as good as paid, even past the window.
        (S.PAYMENT_PENDING, "requires_capture", 10, True, A.MARK_CONFIRMED),
        (S.REQUIRES_ACTION, "requires_capture", 10_000, True, A.MARK_CONFIRMED),
    ],
)
def test_payment_action(
    status: OrderStatus, intent: str | None, age: float, has_pm: bool, expected: PaymentAction
) -> None:
    action = payment_action(
        status, intent, age_seconds=age, payment_window_seconds=WINDOW, has_payment_method=has_pm
    )
    assert action is expected


THRESHOLD = 300.0


def _stuck(
    status: OrderStatus, idle: float = 1_000, resumes: int = 0, waiting: bool = False
) -> str:
    return stuck_action(
        status,
        idle_seconds=idle,
        threshold_seconds=THRESHOLD,
        resumes_so_far=resumes,
        max_resumes=3,
        waiting_on_customer=waiting,
    )


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (S.PENDING, "resume"),
        (S.RESERVED, "resume"),
        (S.PAYMENT_PENDING, "resume"),
        (S.REQUIRES_ACTION, "nothing"),
        (S.CONFIRMED, "resume"),
        (S.SHIPPED, "nothing"),
        (S.DELIVERED, "nothing"),
        (S.CANCELLED, "nothing"),
        (S.FAILED, "nothing"),
        (S.REFUNDED, "nothing"),
    ],
)
def test_stuck_action_by_status(status: OrderStatus, expected: str) -> None:
    assert _stuck(status) == expected


def test_stuck_action_threshold() -> None:
    assert _stuck(S.RESERVED, idle=THRESHOLD - 0.1) == "nothing"
    assert _stuck(S.RESERVED, idle=THRESHOLD) == "resume"


def test_stuck_action_waiting_on_customer() -> None:
    assert _stuck(S.PAYMENT_PENDING, waiting=True) == "nothing"


def test_chain_dead_before_confirm_is_resumed_by_the_stuck_sweep_only() -> None:
    # The payments sweep leaves it alone; the stuck sweep resumes it once idle, then flags it.
    assert (
        payment_action(
            S.PAYMENT_PENDING,
            "requires_confirmation",
            age_seconds=THRESHOLD * 2,
            payment_window_seconds=WINDOW,
            has_payment_method=True,
        )
        is A.NOTHING
    )
    assert _stuck(S.PAYMENT_PENDING, idle=THRESHOLD - 1) == "nothing"
    assert _stuck(S.PAYMENT_PENDING, idle=THRESHOLD) == "resume"
    assert _stuck(S.PAYMENT_PENDING, idle=THRESHOLD, resumes=3) == "needs_attention"


def test_stuck_action_gives_up_after_max_resumes() -> None:
    assert _stuck(S.CONFIRMED, resumes=2) == "resume"
    assert _stuck(S.CONFIRMED, resumes=3) == "needs_attention"
    assert _stuck(S.CONFIRMED, resumes=4) == "needs_attention"
    # Not idle long enough: no escalation either.
    assert _stuck(S.CONFIRMED, idle=1, resumes=10) == "nothing"


NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("shipped_at", "now", "expected"),
    [
        (None, NOW, False),
        (NOW - timedelta(seconds=59), NOW, False),
        (NOW - timedelta(seconds=60), NOW, True),
        (NOW - timedelta(hours=1), NOW, True),
        (NOW + timedelta(seconds=5), NOW, False),
        # Naive datetimes (as MongoDB returns them) are UTC.
        (datetime(2026, 11, 25, 11, 58), NOW, True),
        (datetime(2026, 11, 25, 11, 59, 30), NOW, False),
        (NOW - timedelta(seconds=61), datetime(2026, 11, 25, 12, 0), True),
    ],
)
def test_delivery_due(shipped_at: datetime | None, now: datetime, expected: bool) -> None:
    assert delivery_due(shipped_at, now, 60.0) is expected
