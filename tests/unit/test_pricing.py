"""Order totals in integer minor units."""

from __future__ import annotations

import pytest

from workflows.errors import PermanentError
from workflows.pricing import PricedLine, Totals, half_up_div, price_order


def line(price: int = 1000, qty: int = 1, currency: str = "usd", sku: str = "SKU-1") -> PricedLine:
    return PricedLine(
        sku=sku, name=f"Item {sku}", unit_price_cents=price, quantity=qty, currency=currency
    )


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [
        (0, 10_000, 0),
        (1, 2, 1),  # exactly .5 rounds up
        (3, 2, 2),
        (5, 2, 3),
        (4, 3, 1),
        (5, 3, 2),
        (49_999, 10_000, 5),
        (44_999, 10_000, 4),
        (45_000, 10_000, 5),
        (825, 10_000, 0),  # 1 cent at 8.25 %
        (-1, 2, -1),  # halves round away from zero
        (-5, 2, -3),
        (-4, 3, -1),
        (10**30 + 5, 10, 10**29 + 1),  # far beyond float precision
    ],
)
def test_half_up_div(numerator: int, denominator: int, expected: int) -> None:
    assert half_up_div(numerator, denominator) == expected


@pytest.mark.parametrize("denominator", [0, -10])
def test_half_up_div_needs_positive_denominator(denominator: int) -> None:
    with pytest.raises(ValueError, match="denominator must be positive"):
        half_up_div(10, denominator)


def test_half_up_div_refuses_floats() -> None:
    with pytest.raises(TypeError):
        half_up_div(2.5, 2)  # type: ignore[arg-type]


def test_line_total() -> None:
    assert line(price=1999, qty=3).line_total_cents == 5997


@pytest.mark.parametrize(
    ("lines", "bps", "shipping", "expected"),
    [
        # 1 cent at 8.25 % is 0.0825 cents of tax: rounds to 0.
        ([line(price=1)], 825, 0, Totals(1, 0, 0, 1, "usd")),
        # 1000 at 8.25 % = 82.5 → 83 (exact half rounds up).
        ([line(price=1000)], 825, 500, Totals(1000, 83, 500, 1583, "usd")),
        # 200 at 0.25 % = 0.5 → 1.
        ([line(price=200)], 25, 0, Totals(200, 1, 0, 201, "usd")),
        # 199 at 0.25 % = 0.4975 → 0.
        ([line(price=199)], 25, 0, Totals(199, 0, 0, 199, "usd")),
        # 1999 * 3 + 550 * 2 = 7097; 7097 at 8.25 % = 585.5025 → 586.
        (
            [line(price=1999, qty=3), line(price=550, qty=2, sku="SKU-2")],
            825,
            799,
            Totals(7097, 586, 799, 8482, "usd"),
        ),
        # No tax, no shipping.
        ([line(price=1234, qty=2)], 0, 0, Totals(2468, 0, 0, 2468, "usd")),
        # Free items are allowed.
        ([line(price=0, qty=5)], 825, 300, Totals(0, 0, 300, 300, "usd")),
        # Large: 99,999,999.99 x 100 at 8.25 % = 82,499,999,991.75 → ...992, exact in ints.
        (
            [line(price=9_999_999_999, qty=100)],
            825,
            0,
            Totals(999_999_999_900, 82_499_999_992, 0, 1_082_499_999_892, "usd"),
        ),
    ],
)
def test_price_order(lines: list[PricedLine], bps: int, shipping: int, expected: Totals) -> None:
    assert price_order(lines, tax_rate_bps=bps, shipping_cents=shipping, currency="usd") == expected


def test_currency_is_compared_case_insensitively_and_lowercased() -> None:
    totals = price_order([line(currency="EUR")], tax_rate_bps=0, shipping_cents=0, currency="Eur")
    assert totals.currency == "eur"


def test_currency_mismatch() -> None:
    lines = [line(currency="usd"), line(currency="eur", sku="SKU-EU")]
    with pytest.raises(PermanentError) as caught:
        price_order(lines, tax_rate_bps=825, shipping_cents=0, currency="usd")
    assert caught.value.code == "currency_mismatch"
    assert "SKU-EU" in caught.value.message


def test_no_lines() -> None:
    with pytest.raises(ValueError, match="at least one line"):
        price_order([], tax_rate_bps=825, shipping_cents=0, currency="usd")


@pytest.mark.parametrize("qty", [0, -1, 101, 1000])
def test_bad_quantity(qty: int) -> None:
    with pytest.raises(ValueError, match=r"quantity of SKU-1 must be 1\.\.100"):
        price_order([line(qty=qty)], tax_rate_bps=825, shipping_cents=0, currency="usd")


@pytest.mark.parametrize("qty", [1, 100])
def test_quantity_bounds_are_inclusive(qty: int) -> None:
    totals = price_order(
        [line(price=10, qty=qty)], tax_rate_bps=0, shipping_cents=0, currency="usd"
    )
    assert totals.subtotal_cents == 10 * qty


@pytest.mark.parametrize(
    ("lines", "bps", "shipping"),
    [
        ([line(price=-1)], 825, 0),
        ([line()], -1, 0),
        ([line()], 825, -1),
    ],
)
def test_negative_amounts(lines: list[PricedLine], bps: int, shipping: int) -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        price_order(lines, tax_rate_bps=bps, shipping_cents=shipping, currency="usd")


def test_float_amounts_are_refused() -> None:
    with pytest.raises(TypeError):
        price_order([line(price=9.99)], tax_rate_bps=825, shipping_cents=0, currency="usd")  # type: ignore[arg-type]


def test_format_minor_follows_each_currency_exponent() -> None:
    from workflows.pricing import format_minor

    assert format_minor(1234, "usd") == "12.34"
    assert format_minor(5, "EUR") == "0.05"
    assert format_minor(-1250, "gbp") == "-12.50"
    assert format_minor(1234, "jpy") == "1234"
    assert format_minor(1234, "kwd") == "1.234"
    assert format_minor(0, "usd") == "0.00"
