"""Customer wording of declines and failure reasons: plain, and never an internal."""

from __future__ import annotations

import pytest

from workflows.customer_text import (
    DECLINE_MESSAGES,
    GENERIC_DECLINE,
    NEEDS_ATTENTION,
    PAYMENT_TIMEOUT,
    customer_actor,
    customer_reason,
    decline_code_of,
    decline_message,
)


def test_every_stripe_decline_code_has_a_sentence_without_codes_or_ids() -> None:
    # A sample of Stripe's published card decline codes (docs.stripe.com/declines/codes).
    for code in (
        "insufficient_funds",
        "expired_card",
        "incorrect_cvc",
        "do_not_honor",
        "processing_error",
        "card_velocity_exceeded",
        "authentication_required",
    ):
        assert code in DECLINE_MESSAGES
    for code, text in DECLINE_MESSAGES.items():
        assert "_" not in text and code not in text and text.endswith("."), code


@pytest.mark.parametrize("code", ["fraudulent", "lost_card", "stolen_card", "merchant_blacklist"])
def test_risk_declines_show_the_generic_message_as_stripe_advises(code: str) -> None:
    assert decline_message(code) == GENERIC_DECLINE


def test_unknown_or_missing_code_is_the_generic_decline() -> None:
    assert decline_message("something_new") == GENERIC_DECLINE
    assert decline_message(None) == GENERIC_DECLINE


def test_our_decline_reason_is_translated_and_raw_text_dropped() -> None:
    raw = "payment declined: insufficient_funds (Your card has insufficient funds.)"
    assert decline_code_of(raw) == "insufficient_funds"
    assert (
        customer_reason(raw, status="failed", actor="task:payments.confirm_payment")
        == (DECLINE_MESSAGES["insufficient_funds"])
    )
    assert customer_reason("payment declined: card_declined (Your card was declined.)") == (
        GENERIC_DECLINE
    )


def test_system_reasons_in_plain_words_people_keep_their_own() -> None:
    assert customer_reason("payment_timeout", status="failed", actor="beat:payments") == (
        PAYMENT_TIMEOUT
    )
    assert "SKU-1 sold out" in customer_reason("out of stock: SKU-1", status="failed")
    assert customer_reason("needs attention: order stuck after retries") == NEEDS_ATTENTION
    assert customer_reason("changed my mind", status="cancelled", actor="customer") == (
        "changed my mind"
    )
    # A system reason we do not know by name: the status's sentence, never the raw text.
    odd = customer_reason("create_intent: pi_123 boom", status="failed", actor="task:x")
    assert odd and "pi_" not in odd and "create_intent" not in odd
    assert customer_reason("create_intent: boom", status="confirmed", actor="task:x") is None
    assert customer_reason(None) is None


def test_actors_are_categories() -> None:
    assert customer_actor("customer") == "customer"
    assert customer_actor("admin") == "staff"
    assert customer_actor("task:payments.confirm_payment") == "system"
    assert customer_actor("beat:payments") == "system"
    assert customer_actor(None) is None
