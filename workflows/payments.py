"""Pure payment decisions: is what Stripe took what the order costs? No I/O."""

from __future__ import annotations


def payment_mismatch(
    total_cents: int, order_currency: str, received_cents: int, received_currency: str
) -> str | None:
    """None when the payment matches the order exactly, else the reason naming both sides.

    Amounts are integers in minor units; currencies compare case-insensitively (Stripe
    answers lower case, the order may store ``USD``). A payment is never assumed right.
    """
    same_currency = (order_currency or "").lower() == (received_currency or "").lower()
    if same_currency and received_cents == total_cents:
        return None
    return (
        f"payment amount mismatch: received {received_cents} {(received_currency or '?').upper()}"
        f", order total {total_cents} {(order_currency or '?').upper()}"
    )


# An order in one of these will never ship: money it holds must go back.
ENDED_UNSHIPPED: frozenset[str] = frozenset({"cancelled", "failed"})


def money_kept(
    order_status: str | None,
    *,
    intent_status: str,
    received_cents: int,
    refunded_cents: int,
    is_orders_intent: bool,
) -> bool:
    """True when an intent holds money that must be returned automatically.

    A succeeded intent with something left unrefunded whose order ended without shipping
    (``cancelled``/``failed``: the customer paid in the browser while it was being
    cancelled, a compensation was lost), or that is not the order's own intent at all (a
    second charge for one order). An intent whose order we do not know is not ours to judge.
    """
    if intent_status != "succeeded" or received_cents - refunded_cents <= 0:
        return False
    if order_status is None:
        return False
    return order_status in ENDED_UNSHIPPED or not is_orders_intent
