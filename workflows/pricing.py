"""Order totals in integer minor units (cents); no floats anywhere. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from workflows.errors import PermanentError

MIN_QUANTITY = 1
MAX_QUANTITY = 100
BPS_PER_UNIT = 10_000


@dataclass(frozen=True)
class PricedLine:
    """One order line priced from the catalog (never from the client)."""

    sku: str
    name: str
    unit_price_cents: int
    quantity: int
    currency: str

    @property
    def line_total_cents(self) -> int:
        """Unit price times quantity, in minor units."""
        return self.unit_price_cents * self.quantity


@dataclass(frozen=True)
class Totals:
    """An order's money figures in minor units; ``currency`` is lowercase ISO 4217."""

    subtotal_cents: int
    tax_cents: int
    shipping_cents: int
    total_cents: int
    currency: str


def half_up_div(numerator: int, denominator: int) -> int:
    """Divide two integers, rounding halves away from zero (2.5 → 3, -2.5 → -3).

    Integer arithmetic only, so large amounts never lose precision to floats.
    Raises ``ValueError`` unless ``denominator`` is positive.
    """
    _require_int("numerator", numerator)
    _require_int("denominator", denominator)
    if denominator <= 0:
        raise ValueError(f"denominator must be positive, got {denominator}")
    quotient, remainder = divmod(abs(numerator), denominator)
    if 2 * remainder >= denominator:
        quotient += 1
    return quotient if numerator >= 0 else -quotient


def price_order(
    lines: Sequence[PricedLine], *, tax_rate_bps: int, shipping_cents: int, currency: str
) -> Totals:
    """Compute subtotal, tax, shipping and total for ``lines`` in ``currency``.

    Tax is ``subtotal * tax_rate_bps / 10000`` rounded half-up. Raises ``ValueError`` for
    no lines, a quantity outside 1..100, or a negative price, rate or shipping; raises
    ``PermanentError(code="currency_mismatch")`` when a line is priced in another currency.
    """
    _require_non_negative("tax_rate_bps", tax_rate_bps)
    _require_non_negative("shipping_cents", shipping_cents)
    if not isinstance(currency, str) or not currency.strip():
        raise ValueError("currency must be a non-empty string")
    order_currency = currency.strip().lower()
    if not lines:
        raise ValueError("an order needs at least one line")

    subtotal = 0
    for line in lines:
        _require_int(f"quantity of {line.sku}", line.quantity)
        if not MIN_QUANTITY <= line.quantity <= MAX_QUANTITY:
            raise ValueError(
                f"quantity of {line.sku} must be {MIN_QUANTITY}..{MAX_QUANTITY},"
                f" got {line.quantity}"
            )
        _require_non_negative(f"unit_price_cents of {line.sku}", line.unit_price_cents)
        if line.currency.strip().lower() != order_currency:
            raise PermanentError(
                f"{line.sku} is priced in {line.currency.lower()}, the order in {order_currency}",
                code="currency_mismatch",
            )
        subtotal += line.line_total_cents

    tax = half_up_div(subtotal * tax_rate_bps, BPS_PER_UNIT)
    return Totals(
        subtotal_cents=subtotal,
        tax_cents=tax,
        shipping_cents=shipping_cents,
        total_cents=subtotal + tax + shipping_cents,
        currency=order_currency,
    )


def _require_int(label: str, value: object) -> None:
    # bool is an int subclass and a float would silently bring rounding back in.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{label} must be an int, got {type(value).__name__}")


def _require_non_negative(label: str, value: int) -> None:
    _require_int(label, value)
    if value < 0:
        raise ValueError(f"{label} must not be negative, got {value}")


# ISO 4217 minor-unit exponents where they are not 2 (Stripe's zero- and three-decimal lists).
ZERO_DECIMAL = frozenset(
    [
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    ]
)
THREE_DECIMAL = frozenset(["bhd", "jod", "kwd", "omr", "tnd"])


def minor_exponent(currency: str) -> int:
    """How many decimals ``currency``'s minor unit has (2 unless ISO 4217 says otherwise)."""
    code = currency.lower()
    if code in ZERO_DECIMAL:
        return 0
    return 3 if code in THREE_DECIMAL else 2


def format_minor(amount: int, currency: str) -> str:
    """``amount`` minor units as a plain decimal string (1234 usd → "12.34"), no floats."""
    _require_int("amount", amount)
    exponent = minor_exponent(currency)
    if exponent == 0:
        return str(amount)
    whole, part = divmod(abs(amount), 10**exponent)
    return f"{'-' if amount < 0 else ''}{whole}.{part:0{exponent}d}"
