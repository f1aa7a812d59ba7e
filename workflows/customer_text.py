"""What a customer reads: Stripe decline codes and our failure reasons in plain words. Pure.

Internals (task names, intent ids, correlation ids, the provider's raw decline text) stay in
the admin views; the customer views of orders, events and notifications go through here.

The decline codes are Stripe's published card decline codes
(https://docs.stripe.com/declines/codes). Stripe's advice for ``fraudulent``,
``lost_card``, ``stolen_card``, ``merchant_blacklist`` and ``pickup_card`` is to show the
customer the generic decline, so those map to it on purpose.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

_TRY_ANOTHER = "Please try another card."
_CALL_BANK = "Please contact your bank, or try another card."
GENERIC_DECLINE = f"Your card was declined. {_CALL_BANK}"
_CHECK_DETAILS = "Please check the card details and try again, or use another card."
_TRY_LATER = "Please try again in a few minutes, or use another card."

DECLINE_MESSAGES: Mapping[str, str] = MappingProxyType(
    {
        "authentication_required": (
            "Your bank needs you to confirm this payment. Please try again and complete "
            "the check your bank shows you."
        ),
        "approve_with_id": f"Your bank could not approve this payment. {_TRY_LATER}",
        "call_issuer": GENERIC_DECLINE,
        "card_not_supported": f"This card does not support this kind of purchase. {_TRY_ANOTHER}",
        "card_velocity_exceeded": (
            f"This payment is over your card's balance or credit limit. {_CALL_BANK}"
        ),
        "currency_not_supported": f"This card cannot pay in this currency. {_TRY_ANOTHER}",
        "do_not_honor": GENERIC_DECLINE,
        "do_not_try_again": GENERIC_DECLINE,
        "duplicate_transaction": (
            "A payment for the same amount was just made with this card. Please check your "
            "statement before trying again."
        ),
        "expired_card": f"This card has expired. {_TRY_ANOTHER}",
        "fraudulent": GENERIC_DECLINE,
        "generic_decline": GENERIC_DECLINE,
        "incorrect_number": f"The card number is incorrect. {_CHECK_DETAILS}",
        "incorrect_cvc": f"The card's security code (CVC) is incorrect. {_CHECK_DETAILS}",
        "incorrect_pin": f"The PIN is incorrect. {_CHECK_DETAILS}",
        "incorrect_zip": f"The postal code does not match the card. {_CHECK_DETAILS}",
        "insufficient_funds": f"The card has insufficient funds. {_TRY_ANOTHER}",
        "invalid_account": f"This card or its account is not valid. {_CALL_BANK}",
        "invalid_amount": f"Your bank did not accept the amount. {_CALL_BANK}",
        "invalid_cvc": f"The card's security code (CVC) is incorrect. {_CHECK_DETAILS}",
        "invalid_expiry_month": f"The card's expiry month is incorrect. {_CHECK_DETAILS}",
        "invalid_expiry_year": f"The card's expiry year is incorrect. {_CHECK_DETAILS}",
        "invalid_number": f"The card number is incorrect. {_CHECK_DETAILS}",
        "invalid_pin": f"The PIN is incorrect. {_CHECK_DETAILS}",
        "issuer_not_available": f"We could not reach your bank. {_TRY_LATER}",
        "lost_card": GENERIC_DECLINE,
        "merchant_blacklist": GENERIC_DECLINE,
        "new_account_information_available": f"This card's details have changed. {_CALL_BANK}",
        "no_action_taken": GENERIC_DECLINE,
        "not_permitted": f"This payment is not permitted on this card. {_CALL_BANK}",
        "offline_pin_required": f"This card needs a PIN, which online payments cannot take. "
        f"{_TRY_ANOTHER}",
        "online_or_offline_pin_required": f"This card needs a PIN, which online payments cannot "
        f"take. {_TRY_ANOTHER}",
        "pickup_card": GENERIC_DECLINE,
        "pin_try_exceeded": f"Too many wrong PIN attempts on this card. {_TRY_ANOTHER}",
        "processing_error": f"Something went wrong while processing the card. {_TRY_LATER}",
        "reenter_transaction": f"Your bank could not process the payment. {_TRY_LATER}",
        "restricted_card": GENERIC_DECLINE,
        "revocation_of_all_authorizations": GENERIC_DECLINE,
        "revocation_of_authorization": GENERIC_DECLINE,
        "security_violation": GENERIC_DECLINE,
        "service_not_allowed": f"This card does not allow this kind of purchase. {_CALL_BANK}",
        "stolen_card": GENERIC_DECLINE,
        "stop_payment_order": GENERIC_DECLINE,
        "testmode_decline": "This is a test card: it cannot be charged. Please use a real card.",
        "transaction_not_allowed": (
            f"Your bank does not allow this kind of purchase on this card. {_CALL_BANK}"
        ),
        "try_again_later": f"Your bank declined the payment for now. {_TRY_LATER}",
        "withdrawal_count_limit_exceeded": (
            f"This card has reached its limit for now. {_TRY_ANOTHER}"
        ),
        # Stripe's error codes (not decline codes) that come with a card error.
        "card_declined": GENERIC_DECLINE,
        "expired_card_error": f"This card has expired. {_TRY_ANOTHER}",
    }
)

# Our own failure reasons (see tasks/*: ``end_order(..., reason=...)``) → customer text.
PAYMENT_TIMEOUT = (
    "We did not receive your payment in time, so the order was closed and its items "
    "released. You have not been charged."
)
NEEDS_ATTENTION = "This order is taking longer than usual; our team is looking into it."
_FIXED_REASONS: Mapping[str, str] = MappingProxyType(
    {
        "payment_timeout": PAYMENT_TIMEOUT,
        "payment intent canceled": "The payment was cancelled before it completed. "
        "You have not been charged.",
        "3-D Secure authentication required": "Your bank asks you to confirm this payment.",
        "order placed": "Order placed.",
        "order stuck after retries": NEEDS_ATTENTION,
    }
)
_DECLINED = re.compile(r"^payment declined:\s*([a-z_]+)")
_OUT_OF_STOCK = re.compile(r"^out of stock:\s*([A-Z0-9][A-Z0-9\-]*)")
# By the status it explains, when a system reason is not one we know by name.
_BY_STATUS: Mapping[str, str] = MappingProxyType(
    {
        "failed": "We could not complete this order. If you were charged, the money is "
        "returned automatically.",
        "cancelled": "The order was cancelled.",
        "refunded": "Your payment was refunded.",
    }
)
HUMAN_ACTORS = frozenset({"customer", "admin"})


def decline_message(code: str | None) -> str:
    """The customer's sentence for a Stripe decline (or error) code; the generic one if unknown."""
    return DECLINE_MESSAGES.get((code or "").strip().lower(), GENERIC_DECLINE)


def decline_code_of(reason: str | None) -> str | None:
    """The decline code inside one of our ``payment declined: <code> (...)`` reasons."""
    match = _DECLINED.match(reason or "")
    return match.group(1) if match else None


def customer_actor(actor: str | None) -> str | None:
    """Who did it, as a customer may read it: ``customer``, ``staff`` or ``system``."""
    if not actor:
        return None
    if actor == "customer":
        return "customer"
    if actor == "admin":
        return "staff"
    return "system"


def customer_reason(
    reason: str | None, *, status: str | None = None, actor: str | None = None
) -> str | None:
    """A status reason in the customer's words; never a task name, an id or provider text.

    Reasons a person typed (a customer's or an admin's cancel reason, a note) are theirs and
    pass unchanged; the system's reasons are translated, and an unknown system reason gives
    the status's plain sentence (or nothing).
    """
    if not reason:
        return None
    text = reason.strip()
    if text in _FIXED_REASONS:
        return _FIXED_REASONS[text]
    if text.startswith("payment declined"):
        return decline_message(decline_code_of(text))
    if match := _OUT_OF_STOCK.match(text):
        return (
            f"Sorry, {match.group(1)} sold out before we could reserve it. "
            "You have not been charged."
        )
    if text.startswith("needs attention"):
        return NEEDS_ATTENTION
    if actor in HUMAN_ACTORS:
        return text
    return _BY_STATUS.get(status or "")
