"""Dashboard polish in a real browser: a card number typed with spaces, the test cards hint,
stats that move with the rows, notifications with one "Mark all read", capped toasts."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import DESKTOP, PHONE
from tests.browser.ui import (
    api_get,
    expect_live,
    fill_order_form,
    register,
    row_status,
    submit_order,
    tid,
)

pytestmark = pytest.mark.timeout(240)
CHAIN_MS = 30_000
SHOWN_VALUE = (
    "el => Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').get.call(el)"
)


def test_card_number_typed_with_spaces_is_grouped_and_the_order_ships(open_page):
    b = open_page(PHONE)
    page = b.page
    register(page, "Grace", "Hopper")
    expect_live(page)
    fill_order_form(page, {"WIDGET-1": 1}, None)
    expect(tid(page, "test-cards")).to_be_visible()
    expect(tid(page, "test-cards")).to_contain_text("4242 4242 4242 4242")
    number = tid(page, "card-number")
    number.click()
    number.press_sequentially("4242 4242 4242 4242", delay=15)
    # Shown grouped as Stripe's Element shows it; the month was not filled by the overflow.
    assert number.evaluate(SHOWN_VALUE) == "4242 4242 4242 4242"
    assert tid(page, "card-exp-month").input_value() == ""
    expect(tid(page, "card-exp-month")).to_be_focused()
    # Typed without spaces, or pasted with other separators: the same grouping.
    number.fill("")
    number.press_sequentially("4242424242424242", delay=5)
    assert number.evaluate(SHOWN_VALUE) == "4242 4242 4242 4242"
    number.fill("")
    number.press_sequentially("4242 4242 4242 4242", delay=5)
    tid(page, "card-exp-month").fill("12")
    tid(page, "card-exp-year").fill("34")
    tid(page, "card-cvc").fill("123")
    tid(page, "card-postal-code").fill("42424")
    order = submit_order(page)
    expect(row_status(page, order["id"])).to_have_text("shipped", timeout=CHAIN_MS)
    cards = api_get(page, "/api/payments/payment-methods/me")["data"]
    listed = cards.get("paymentMethods") or cards.get("cards") or []
    assert any(str(c.get("last4")) == "4242" for c in listed), cards
    b.assert_clean()


def test_stats_move_with_the_rows_notifications_and_toasts(open_page):
    b = open_page(DESKTOP)
    page = b.page
    register(page, "Alan", "Turing")
    expect_live(page)
    fill_order_form(page, {"GADGET-2": 1}, "4242424242424242")
    order = submit_order(page)
    expect(row_status(page, order["id"])).to_have_text("shipped", timeout=CHAIN_MS)
    # Read at once, with no waiting: the same live event moved the row and the figures.
    chips = tid(page, "stat-by-status").inner_text()
    revenue = tid(page, "stat-revenue").inner_text()
    assert "shipped: 1" in chips and "reserved" not in chips and "pending" not in chips, chips
    assert f"{order['totalCents'] / 100:.2f}" in revenue, revenue

    # Notifications: a title and a body each, one "Mark all read" for the lot.
    tid(page, "nav-notifications").click()
    entries = page.locator('[data-testid^="notification-"]').filter(
        has=tid(page, "notification-title")
    )
    expect(entries.first).to_be_visible()
    assert entries.count() >= 3
    first = entries.first
    expect(first.get_by_test_id("notification-title")).not_to_be_empty()
    expect(first.get_by_test_id("notification-body")).not_to_be_empty()
    title_box = first.get_by_test_id("notification-title").bounding_box()
    body_box = first.get_by_test_id("notification-body").bounding_box()
    assert body_box["y"] >= title_box["y"] + title_box["height"] - 1  # on its own line
    expect(page.get_by_role("button", name="Mark read")).to_have_count(0)
    expect(tid(page, "mark-all-read")).to_have_count(1)
    expect(tid(page, "unread-count")).to_be_visible()
    tid(page, "mark-all-read").click()
    expect(tid(page, "mark-all-read")).to_be_hidden()
    expect(tid(page, "unread-count")).to_be_hidden()
    unread = api_get(page, "/api/notifications?unread=true")
    assert unread["pagination"]["total"] == 0

    # Toasts: at most three, and the page keeps room below its content for them.
    page.evaluate(
        """async () => {
          const { toast } = await import('/js/toast.js');
          for (let i = 0; i < 6; i += 1) toast(`note ${i}`, { timeout: 0 });
        }"""
    )
    expect(page.locator("[data-testid=toasts] .toast")).to_have_count(3)
    expect(page.locator("[data-testid=toasts] .toast").last).to_have_text("note 5×")
    page.wait_for_function(
        """() => {
          const region = document.querySelector('[data-testid=toasts]').getBoundingClientRect();
          return parseFloat(getComputedStyle(document.body).paddingBottom) >= region.height;
        }"""
    )
    page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
    overlap = page.evaluate(
        """() => {
          const region = document.querySelector('[data-testid=toasts]').getBoundingClientRect();
          const last = [...document.querySelectorAll('main *')]
            .filter((el) => el.offsetParent !== null && el.children.length === 0)
            .map((el) => el.getBoundingClientRect())
            .filter((r) => r.height > 0);
          return last.filter((r) => r.bottom > region.top && r.right > region.left).length;
        }"""
    )
    assert overlap == 0
    b.assert_clean()
