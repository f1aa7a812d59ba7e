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
