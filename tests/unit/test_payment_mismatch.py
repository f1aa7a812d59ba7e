"""The money check behind settling a succeeded intent (pure)."""

from __future__ import annotations

from workflows.payments import payment_mismatch


def test_exact_amount_and_currency_match_whatever_the_case() -> None:
    assert payment_mismatch(2750, "USD", 2750, "usd") is None


def test_less_or_more_is_a_mismatch_naming_both_amounts() -> None:
    assert payment_mismatch(2750, "usd", 2700, "usd") == (
        "payment amount mismatch: received 2700 USD, order total 2750 USD"
    )
    assert "received 2800 USD" in payment_mismatch(2750, "usd", 2800, "usd")


def test_other_currency_is_a_mismatch_even_for_the_same_number() -> None:
    assert payment_mismatch(2750, "usd", 2750, "eur") == (
        "payment amount mismatch: received 2750 EUR, order total 2750 USD"
    )


def test_nothing_received_is_a_mismatch() -> None:
    assert payment_mismatch(100, "usd", 0, "") is not None


def _kept(status, intent="succeeded", received=1000, refunded=0, own=True) -> bool:
    from workflows.payments import money_kept

    return money_kept(
        status,
        intent_status=intent,
        received_cents=received,
        refunded_cents=refunded,
        is_orders_intent=own,
    )


def test_money_kept_for_an_ended_unshipped_order_is_returned() -> None:
    assert _kept("cancelled") and _kept("failed")
    assert _kept("failed", refunded=400)  # the rest of a partial refund


def test_nothing_to_return_when_shipped_refunded_unpaid_or_unknown() -> None:
    assert not _kept("shipped") and not _kept("confirmed") and not _kept("delivered")
    assert not _kept("cancelled", refunded=1000)
    assert not _kept("cancelled", intent="canceled")
    assert not _kept("cancelled", intent="requires_capture")
    assert not _kept(None)


def test_a_second_charge_for_one_order_is_returned_whatever_its_status() -> None:
    assert _kept("shipped", own=False)
