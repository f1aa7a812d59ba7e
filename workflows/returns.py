"""Returns, the pure part: what may be returned, what a return refunds, how one moves. No I/O.

A return belongs to a delivered order: the customer asks for lines (sku, quantity) within
the return window; an admin approves or rejects it with a reason; receiving the goods puts
them back on sale and refunds the lines, once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from workflows.pricing import half_up_div


class ReturnStatus(StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    RECEIVED = "received"
    REFUNDED = "refunded"


_R = ReturnStatus
RETURN_MOVES: Mapping[ReturnStatus, frozenset[ReturnStatus]] = {
    _R.REQUESTED: frozenset({_R.APPROVED, _R.REJECTED}),
    _R.APPROVED: frozenset({_R.RECEIVED}),
    _R.RECEIVED: frozenset({_R.REFUNDED}),
    _R.REJECTED: frozenset(),
    _R.REFUNDED: frozenset(),
}


def can_move(frm: ReturnStatus | str, to: ReturnStatus | str) -> bool:
    return ReturnStatus(to) in RETURN_MOVES[ReturnStatus(frm)]


def within_window(delivered_at: datetime | None, now: datetime, window_seconds: int) -> bool:
    """True while a delivered order may still be returned."""
    return delivered_at is not None and now <= delivered_at + timedelta(seconds=window_seconds)


def returnable(
    items: Sequence[Mapping[str, Any]], returns: Iterable[Mapping[str, Any]]
) -> dict[str, int]:
    """Units of each sku that no live return (anything but rejected) claims yet."""
    left = {str(i["sku"]): int(i["quantity"]) for i in items}
    for ret in returns:
        if ret.get("status") == _R.REJECTED:
            continue
        for line in ret.get("lines", []):
            left[str(line["sku"])] = left.get(str(line["sku"]), 0) - int(line["quantity"])
    return left


def line_errors(
    items: Sequence[Mapping[str, Any]],
    returns: Iterable[Mapping[str, Any]],
    lines: Sequence[Mapping[str, Any]],
) -> list[dict[str, str]]:
    """Field errors for the requested ``lines`` (unknown sku, too many, repeated sku)."""
    left = returnable(items, returns)
    errors: list[dict[str, str]] = []
    seen: set[str] = set()
    for n, line in enumerate(lines):
        sku, quantity = str(line["sku"]), int(line["quantity"])
        if sku in seen:
            errors.append({"field": f"lines.{n}.sku", "message": f"{sku} is listed twice"})
        seen.add(sku)
        if sku not in left:
            errors.append({"field": f"lines.{n}.sku", "message": f"{sku} is not in this order"})
        elif quantity > left[sku]:
            errors.append(
                {"field": f"lines.{n}.quantity", "message": f"at most {max(left[sku], 0)} of {sku}"}
            )
    return errors


def refund_cents(
    items: Sequence[Mapping[str, Any]],
    lines: Sequence[Mapping[str, Any]],
    *,
    subtotal_cents: int,
    tax_cents: int,
) -> int:
    """What returning ``lines`` refunds: their price plus their share of the order's tax
    (rounded half up). Shipping is not refunded."""
    prices = {str(i["sku"]): int(i["unitPriceCents"]) for i in items}
    goods = sum(prices[str(line["sku"])] * int(line["quantity"]) for line in lines)
    tax = half_up_div(goods * tax_cents, subtotal_cents) if subtotal_cents else 0
    return goods + tax
