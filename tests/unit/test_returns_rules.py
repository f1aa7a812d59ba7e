"""Returns' pure rules: what is returnable, the refund, the moves, the window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from workflows.returns import (
    ReturnStatus,
    can_move,
    line_errors,
    refund_cents,
    returnable,
    within_window,
)

ITEMS = [
    {"sku": "A", "quantity": 2, "unitPriceCents": 2500},
    {"sku": "B", "quantity": 1, "unitPriceCents": 999},
]


def test_returnable_ignores_rejected_returns() -> None:
    returns = [
        {"status": "requested", "lines": [{"sku": "A", "quantity": 1}]},
        {"status": "rejected", "lines": [{"sku": "A", "quantity": 1}]},
        {"status": "refunded", "lines": [{"sku": "B", "quantity": 1}]},
    ]
    assert returnable(ITEMS, returns) == {"A": 1, "B": 0}


def test_line_errors() -> None:
    assert line_errors(ITEMS, [], [{"sku": "A", "quantity": 2}]) == []
    assert line_errors(ITEMS, [], [{"sku": "A", "quantity": 3}])[0]["field"] == "lines.0.quantity"
    assert line_errors(ITEMS, [], [{"sku": "Z", "quantity": 1}])[0]["field"] == "lines.0.sku"
    twice = line_errors(ITEMS, [], [{"sku": "B", "quantity": 1}, {"sku": "B", "quantity": 1}])
    assert any("twice" in e["message"] for e in twice)


def test_refund_is_the_lines_plus_their_tax_share_half_up() -> None:
    # subtotal 5999, tax 495 (8.25 %): one A is 2500 + 2500 * 495 / 5999 = 206.28 → 206
    assert (
        refund_cents(ITEMS, [{"sku": "A", "quantity": 1}], subtotal_cents=5999, tax_cents=495)
        == 2706
    )
    everything = [{"sku": "A", "quantity": 2}, {"sku": "B", "quantity": 1}]
    assert refund_cents(ITEMS, everything, subtotal_cents=5999, tax_cents=495) == 5999 + 495
    assert refund_cents(ITEMS, everything, subtotal_cents=5999, tax_cents=0) == 5999


def test_moves_and_window() -> None:
    assert can_move(ReturnStatus.REQUESTED, ReturnStatus.APPROVED)
    assert can_move("requested", "rejected")
    assert not can_move("requested", "received")
    assert not can_move("approved", "rejected")
    assert not can_move("refunded", "received")
    delivered = datetime(2026, 12, 1, tzinfo=UTC)
    assert within_window(delivered, delivered + timedelta(days=29), 30 * 86400)
    assert not within_window(delivered, delivered + timedelta(days=31), 30 * 86400)
    assert not within_window(None, delivered, 30 * 86400)
