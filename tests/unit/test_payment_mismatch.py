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
