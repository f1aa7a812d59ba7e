"""The dashboard in a real browser against the whole stack (see conftest.py)."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import DESKTOP, PHONE, shot, wait_until
from tests.browser.ui import (
    CARD_3DS,
    CARD_DECLINED,
    CARD_OK,
    PASSWORD,
    api_get,
    expect_live,
    fill_order_form,
    login,
    place_order,
    register,
    row,
    row_status,
    status_log,
    submit_order,
    tid,
    unlabelled_controls,
)

pytestmark = pytest.mark.timeout(240)
CHAIN_MS = 30_000  # a whole chain, the Stripe emulator and its webhook included


def test_order_with_4242_goes_pending_to_shipped_live(open_page):
    b = open_page(DESKTOP)
    page = b.page
    register(page)
    expect_live(page)
    expect(tid(page, "orders-empty")).to_be_visible()
    page.evaluate("window.__sameDocument = true")

    fill_order_form(page, {"WIDGET-1": 2, "GADGET-2": 1}, CARD_OK)
    expect(tid(page, "estimate-subtotal")).to_have_text("$89.97")
    expect(tid(page, "estimate-note")).to_contain_text("estimate")
    assert unlabelled_controls(page) == []
    shot(page, "new-order-desktop")
    order = submit_order(page)
    assert order["status"] == "pending"
    assert order["subtotalCents"] == 8997 and order["totalCents"] > 8997  # tax + shipping

    # Back on the list, the row shows at once and moves on by itself.
    status = row_status(page, order["id"])
    expect(status).to_have_text("shipped", timeout=CHAIN_MS)
    log = status_log(page, order["id"])
    assert log[0] == "pending" and log[-1] == "shipped", log
    assert page.evaluate("window.__sameDocument") is True, "the page was reloaded"
    expect(tid(page, "toast-live").filter(has_text="shipped")).to_have_count(1)
    expect(tid(page, "stat-total")).to_contain_text("1")
    expect(tid(page, "stat-status-shipped")).to_have_text("shipped: 1")
    expect(tid(page, "stat-revenue")).to_contain_text(f"{order['totalCents'] / 100:.2f}")
    shot(page, "dashboard-desktop")
    page.emulate_media(color_scheme="dark")
    shot(page, "dashboard-desktop-dark")
    page.emulate_media(color_scheme="light")

    # The detail view: totals from the server, the timeline and tracking.
    row(page, order["id"]).get_by_test_id("order-link").click()
    expect(tid(page, "detail-status")).to_contain_text("shipped")
    expect(tid(page, "total")).to_contain_text(f"{order['totalCents'] / 100:.2f}")
    expect(tid(page, "tracking-number")).not_to_have_text("—")
    statuses = tid(page, "timeline-entry").evaluate_all("els => els.map(e => e.dataset.status)")
    for expected in ("pending", "reserved", "confirmed", "shipped"):
        assert expected in statuses, statuses
    shot(page, "order-detail-desktop")

    # Payment history and the saved card.
    tid(page, "nav-payments").click()
    expect(tid(page, "history-row")).to_have_count(1)
    expect(tid(page, "cards-list")).to_contain_text("4242")
    shot(page, "payments-desktop")
    b.assert_clean()


def test_declined_card_shows_the_decline(open_page):
    b = open_page(DESKTOP)
    page = b.page
    register(page, "Bob", "Declined")
    fill_order_form(page, {"WIDGET-1": 1}, CARD_DECLINED)
    tid(page, "place-order").click()
    error = tid(page, "payment-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("declined")
    shot(page, "declined-desktop")
    # Nothing was ordered.
    tid(page, "nav-dashboard").click()
    expect(tid(page, "orders-empty")).to_be_visible()
    b.assert_clean()


def test_3d_secure_card_completes_the_challenge_and_ships(open_page):
    b = open_page(DESKTOP)
    page = b.page
    register(page, "Cleo", "Secure")
    expect_live(page)
    order = place_order(page, {"GADGET-2": 1}, CARD_3DS)
    # The order pauses for the bank; the emulator's Stripe.js opens its challenge.
    challenge = page.get_by_role("button", name="Complete authentication")
    expect(challenge).to_be_visible(timeout=CHAIN_MS)
    assert "requires_action" in status_log(page, order["id"])
    shot(page, "3ds-challenge-desktop")
    challenge.click()
    expect(tid(page, "toast-3ds")).to_be_visible()
    expect(row_status(page, order["id"])).to_have_text("shipped", timeout=CHAIN_MS)
    log = status_log(page, order["id"])
    assert log[0] == "pending" and log[-1] == "shipped", log
    b.assert_clean()


def test_failed_3d_secure_then_cancel_with_a_reason(open_page):
    b = open_page(DESKTOP)
    page = b.page
    register(page, "Dan", "Cancel")
    expect_live(page)
    order = place_order(page, {"WIDGET-1": 1}, CARD_3DS)
    page.get_by_role("button", name="Fail authentication").click(timeout=CHAIN_MS)
    expect(tid(page, "toast-3ds-error")).to_contain_text("3-D Secure")
    expect(row_status(page, order["id"])).to_have_text("requires action")

    row(page, order["id"]).get_by_test_id("order-link").click()
    expect(tid(page, "authenticate-payment")).to_be_visible()
    tid(page, "cancel-submit").click()
    expect(tid(page, "error-reason")).to_contain_text("required")
    tid(page, "cancel-reason").fill("changed my mind")
    tid(page, "cancel-submit").click()
    expect(tid(page, "toast-cancelled")).to_be_visible()
    expect(tid(page, "detail-status")).to_contain_text("cancelled")
    expect(tid(page, "timeline").get_by_text("changed my mind")).to_be_visible()
    expect(tid(page, "cancel-form")).to_have_count(0)
    shot(page, "order-cancelled-desktop")
    b.assert_clean()


def test_admin_resumes_a_stuck_order(open_page, paused_worker, stack):
    from models.order import Order

    customer = open_page(DESKTOP)
    register(customer.page, "Dora", "Stuck")
    # No worker consumes: the chain waits in the queue, then is lost (purged), as when a
    # broker loses messages. The reconciler would flag it; we flag it the same way.
    order = place_order(customer.page, {"WIDGET-1": 1}, CARD_OK)
    paused_worker.purge()
    paused_worker.resume()
    assert Order.flag_attention(order["id"], "no progress for too long", "reconciler")
    expect(row_status(customer.page, order["id"])).to_have_text("pending")

    admin = open_page(DESKTOP)
    page = admin.page
    login(page, stack.admin_email, stack.admin_password)
    tid(page, "nav-admin").click()
    expect_live(page)
    stuck = tid(page, "attention-table").get_by_test_id(f"order-row-{order['id']}")
    expect(stuck.get_by_test_id("needs-attention")).to_be_visible()
    expect(tid(page, "low-stock-CABLE-3")).to_be_visible()
    expect(tid(page, "chart-events-hour")).to_be_visible()
    assert unlabelled_controls(page) == []
    shot(page, "admin-desktop")
    stuck.get_by_test_id("resume-order").click()
    expect(tid(page, "toast-resumed")).to_be_visible()
    # The chain runs again: the admin's table and the customer's list both follow live.
    expect(row_status(page, order["id"], scope="admin-orders-table")).to_have_text(
        "shipped", timeout=CHAIN_MS
    )
    expect(stuck).to_have_count(0)
    expect(tid(page, "attention-empty")).to_be_visible()
    expect(row_status(customer.page, order["id"])).to_have_text("shipped", timeout=CHAIN_MS)

    # Restock the low-stock product from the same view.
    tid(page, "restock-qty-CABLE-3").fill("10")
    tid(page, "restock-CABLE-3").click()
    expect(tid(page, "toast-restocked")).to_contain_text("13 available")
    expect(tid(page, "low-stock-CABLE-3")).to_have_count(0)
    customer.assert_clean()
    admin.assert_clean()


def test_another_user_sees_none_of_it(open_page):
    other = open_page(DESKTOP)
    register(other.page, "Eve", "Other")
    expect_live(other.page)

    owner = open_page(DESKTOP)
    register(owner.page, "Finn", "Owner")
    expect_live(owner.page)
    order = place_order(owner.page, {"WIDGET-1": 1}, CARD_OK)
    expect(row_status(owner.page, order["id"])).to_have_text("shipped", timeout=CHAIN_MS)

    page = other.page
    # No row, no live toast, no stats, no history, no notification of someone else's order.
    expect(row(page, order["id"])).to_have_count(0)
    expect(tid(page, "orders-empty")).to_be_visible()
    expect(tid(page, "toast-live")).to_have_count(0)
    expect(tid(page, "stat-total")).to_contain_text("0")
    page.goto(f"/#/orders/{order['id']}")
    expect(tid(page, "order-error")).to_contain_text("not found")
    tid(page, "nav-payments").click()
    expect(tid(page, "history-empty")).to_be_visible()
    tid(page, "nav-notifications").click()
    expect(tid(page, "notifications-empty")).to_be_visible()
    other.assert_clean()
    owner.assert_clean()


def test_phone_layout_and_validation(open_page):
    b = open_page(PHONE)
    page = b.page
    # Client-side checks before anything is sent.
    page.goto("/#/register")
    tid(page, "register-email").fill("not-an-email")
    tid(page, "register-password").fill("short")
    tid(page, "register-submit").click()
    expect(tid(page, "error-email")).to_contain_text("valid email")
    expect(tid(page, "error-password")).to_contain_text("8 characters")
    expect(tid(page, "error-firstName")).to_contain_text("required")
    shot(page, "register-phone")

    email = register(page, "Gus", "Phone")
    # A field error from the server (409 EMAIL_TAKEN) shows next to its field.
    tid(page, "logout").click()
    tid(page, "to-register").click()
    tid(page, "register-first-name").fill("Gus")
    tid(page, "register-last-name").fill("Again")
    tid(page, "register-email").fill(email)
    tid(page, "register-password").fill(PASSWORD)
    tid(page, "register-submit").click()
    expect(tid(page, "error-email")).to_contain_text("already registered")
    expect(tid(page, "form-error")).to_contain_text("already exists")
    login(page, email)
    expect_live(page)
    # Out-of-range quantities are caught before anything is sent.
    fill_order_form(page, {"WIDGET-1": 101}, None)
    tid(page, "place-order").click()
    expect(page.locator("#qty-WIDGET-1-err")).to_contain_text("1 to 100")
    shot(page, "new-order-phone")

    order = place_order(page, {"WIDGET-1": 1}, CARD_OK)
    expect(row_status(page, order["id"])).to_have_text("shipped", timeout=CHAIN_MS)
    expect(tid(page, "stat-status-shipped")).to_have_text("shipped: 1")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page scrolls sideways at 390 px ({width} px wide)"
    shot(page, "dashboard-phone")
    b.assert_clean()


class LiveLine:
    """Sits on the page's /ws: passes frames through, records them, and can cut the line
    (and refuse reconnections) to play a network drop."""

    def __init__(self, page) -> None:
        self.blocked = False
        self.current = None
        self.sent: list[dict] = []  # page -> server, per connection: (n, frame)
        self.received: list[dict] = []  # server -> page
        self.connections = 0
        page.route_web_socket(re.compile(r"/ws$"), self.handle)

    def handle(self, route) -> None:
        if self.blocked:
            route.close(code=4000, reason="network down")
            return
        self.connections += 1
        n = self.connections
        server = route.connect_to_server()
        self.current = route

        def to_server(message) -> None:
            self.sent.append({"n": n, **json.loads(message)})
            server.send(message)

        def to_page(message) -> None:
            self.received.append({"n": n, **json.loads(message)})
            route.send(message)

        route.on_message(to_server)
        server.on_message(to_page)

    def cut(self) -> None:
        self.blocked = True
        if self.current is not None:
            self.current.close(code=4000, reason="network down")
            self.current = None


def test_live_feed_reconnects_and_resumes_from_the_last_event(open_page):
    b = open_page(DESKTOP)
    page = b.page
    line = LiveLine(page)
    register(page, "Hal", "Resume")
    expect_live(page)
    first = place_order(page, {"WIDGET-1": 1}, CARD_OK)
    expect(row_status(page, first["id"])).to_have_text("shipped", timeout=CHAIN_MS)

    # The line drops; meanwhile a second order runs its whole chain.
    line.cut()
    expect(tid(page, "ws-status")).not_to_have_attribute("data-state", "live")
    last_seen = page.evaluate(
        "() => Object.entries(sessionStorage).find(([k]) => k.startsWith('oms.lastEventId'))"
    )[1]
    # Paid with the card saved for the first order (picked by default, nothing typed).
    fill_order_form(page, {"GADGET-2": 1}, None)
    expect(page.locator('[data-testid^="saved-card-"]')).to_be_checked()
    expect(page.locator('[data-testid^="saved-card-"]')).to_have_count(1)
    expect(tid(page, "new-card")).to_be_hidden()
    second = submit_order(page)
    assert second["paymentMethodId"] == first["paymentMethodId"]
    wait_until(
        lambda: (
            api_get(page, f"/api/orders/{second['id']}")["data"]["order"]["status"] == "shipped"
        ),
        timeout=CHAIN_MS / 1000,
        what="the second order to ship while offline",
    )
    before = line.connections
    line.blocked = False

    # Back online: the client authenticates, resumes after the last event it saw, and the
    # server replays what it missed.
    expect_live(page)
    assert line.connections == before + 1
    n = line.connections
    frames = [f for f in line.sent if f["n"] == n]
    assert frames[0]["type"] == "auth", frames
    assert frames[1] == {"n": n, "type": "resume", "after": last_seen}, frames

    def replayed() -> list[str]:
        return [
            f["event"]["data"].get("to")
            for f in line.received
            if f["n"] == n and f["type"] == "event" and f["event"]["aggregateId"] == second["id"]
        ]

    wait_until(lambda: "shipped" in replayed(), 10, "the missed events replayed", page=page)
    assert "reserved" in replayed(), replayed()
    expect(row_status(page, second["id"])).to_have_text("shipped")
    b.assert_clean()
