"""Integrations in the browser: webhook subscriptions and their log, caught emails, and the
password reset link a customer follows from the email."""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import expect

from core.settings import get_settings
from devstack import processes
from tests.browser.conftest import DESKTOP, shot
from tests.browser.ui import PASSWORD, expect_live, login, place_order, register, tid
from tests.e2e.test_email import _mail_to, _text
from tests.support.events import wait_until

pytestmark = pytest.mark.timeout(240)


def _receiver() -> tuple[ThreadingHTTPServer, list[bytes]]:
    got: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", processes.free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, got


def test_admin_subscribes_sees_deliveries_and_caught_emails(open_page, stack):
    server, got = _receiver()
    try:
        customer = open_page(DESKTOP)
        email = register(customer.page)
        expect_live(customer.page)

        admin = open_page(DESKTOP)
        page = admin.page
        login(page, stack.admin_email, stack.admin_password)
        tid(page, "nav-integrations").click()
        tid(page, "subscribe-url").fill(f"http://127.0.0.1:{server.server_port}/hooks")
        tid(page, "subscribe-types").fill("order.*")
        tid(page, "subscribe-submit").click()
        expect(tid(page, "secret-value")).to_contain_text("whsec_")
        card = page.locator('[data-testid^="subscription-whsub_"]')
        expect(card).to_have_count(1)
        expect(card.locator('[data-testid="subscription-state"]')).to_have_text("active")

        place_order(customer.page, {"WIDGET-1": 1}, "4242424242424242")
        wait_until(lambda: len(got) >= 3, timeout=30)
        card.locator('[data-testid="show-log"]').click()
        rows = card.locator('[data-testid^="delivery-whd_"]')
        expect(rows.first).to_be_visible()
        expect(card.locator('[data-status="succeeded"]').first).to_be_visible()

        tid(page, "mail-refresh").click()
        expect(tid(page, "mail-list").filter(has_text=email)).to_be_visible(timeout=20_000)
        expect(tid(page, "mail-list")).to_contain_text("received")
        shot(page, "integrations-desktop")

        card.locator('[data-testid="toggle-active"]').click()
        expect(card.locator('[data-testid="subscription-state"]')).to_contain_text("disabled")
        admin.assert_clean()
        customer.assert_clean()
    finally:
        server.shutdown()
        server.server_close()


def test_forgot_password_email_link_sets_a_new_one_and_logs_in(open_page, stack):
    first = open_page(DESKTOP)
    email = register(first.page)
    other = open_page(DESKTOP)
    login(other.page, email)  # a second session, which the reset must end

    page = first.page
    tid(page, "logout").click()
    tid(page, "to-forgot").click()
    tid(page, "forgot-email").fill(email)
    tid(page, "forgot-submit").click()
    expect(tid(page, "forgot-done")).to_contain_text("reset link")

    sink = Path(get_settings().mail_sink_dir)
    wait_until(lambda: any(m["Subject"] == "Reset your password" for m in _mail_to(sink, email)))
    link = next(
        re.search(r"(http\S+reset-password\?token=\S+)", _text(m)).group(1)
        for m in _mail_to(sink, email)
        if m["Subject"] == "Reset your password"
    )
    page.goto("/" + link.split("/", 3)[3])  # the same page on the test server's origin
    tid(page, "reset-password").fill("a-fresh-password-9")
    tid(page, "reset-submit").click()
    expect(tid(page, "current-user")).to_contain_text(email)

    # The other session is over: its next call answers 401 and it lands on the login page.
    other.page.reload()
    expect(tid(other.page, "login-form")).to_be_visible(timeout=15_000)
    login(other.page, email, "a-fresh-password-9")
    assert PASSWORD != "a-fresh-password-9"
    first.assert_clean()


def test_customer_returns_an_item_and_admin_receives_it(open_page, stack):
    customer = open_page(DESKTOP)
    page = customer.page
    register(page)
    expect_live(page)
    order = place_order(page, {"WIDGET-1": 2}, "4242424242424242")
    expect(
        tid(page, f"order-row-{order['id']}").locator('[data-testid="order-status"]')
    ).to_have_text("shipped", timeout=30_000)

    admin = open_page(DESKTOP)
    apage = admin.page
    login(apage, stack.admin_email, stack.admin_password)
    token = apage.evaluate("localStorage.getItem('oms.token')")
    delivered = apage.request.patch(
        f"/api/orders/{order['id']}",
        data={"status": "delivered"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert delivered.ok, delivered.text()

    page.goto(f"/#/orders/{order['id']}")
    tid(page, "return-qty-WIDGET-1").fill("1")
    tid(page, "return-reason").fill("one is enough")
    tid(page, "return-submit").click()
    expect(tid(page, "returns").locator('[data-testid="return-status"]')).to_contain_text(
        "requested"
    )

    tid(apage, "nav-returns").click()
    row = apage.locator('[data-testid^="return-row-ret_"]')
    expect(row).to_have_count(1)
    row.locator('[data-testid="return-approve"]').click()
    tid(apage, "returns-filter").select_option("approved")
    row.locator('[data-testid="return-receive"]').click()
    tid(apage, "returns-filter").select_option("refunded")
    expect(row.locator('[data-testid="return-row-status"]')).to_have_text(
        "refunded", timeout=30_000
    )
    shot(apage, "returns-admin")

    page.reload()
    expect(tid(page, "returns").locator('[data-testid="return-status"]')).to_have_text("refunded")
    customer.assert_clean()
    admin.assert_clean()
