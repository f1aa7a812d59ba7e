"""What a person does in the dashboard, as Playwright steps (shared by the browser tests)."""

from __future__ import annotations

import uuid

from playwright.sync_api import Page, expect

PASSWORD = "correct-horse-battery"
CARD_OK = "4242424242424242"
CARD_DECLINED = "4000000000000002"  # declined when attached to the customer
CARD_3DS = "4000002500003155"  # requires_action: 3-D Secure


def tid(page: Page, testid: str):
    return page.locator(f'[data-testid="{testid}"]')


def register(page: Page, first: str = "Ada", last: str = "Lovelace") -> str:
    email = f"{first.lower()}.{uuid.uuid4().hex[:8]}@example.com"
    page.goto("/#/register")
    tid(page, "register-first-name").fill(first)
    tid(page, "register-last-name").fill(last)
    tid(page, "register-email").fill(email)
    tid(page, "register-password").fill(PASSWORD)
    tid(page, "register-submit").click()
    expect(tid(page, "current-user")).to_contain_text(email)
    expect(tid(page, "stats")).to_be_visible()
    return email


def login(page: Page, email: str, password: str = PASSWORD) -> None:
    page.goto("/#/login")
    tid(page, "login-email").fill(email)
    tid(page, "login-password").fill(password)
    tid(page, "login-submit").click()
    expect(tid(page, "current-user")).to_contain_text(email)


def expect_live(page: Page) -> None:
    """The WebSocket is connected and authenticated (the header says so)."""
    expect(tid(page, "ws-status")).to_have_attribute("data-state", "live", timeout=15_000)


def fill_order_form(page: Page, items: dict[str, int], card: str | None) -> None:
    page.goto("/#/orders/new")
    for sku, quantity in items.items():
        tid(page, f"qty-{sku}").fill(str(quantity))
    tid(page, "ship-name").fill("Ada Lovelace")
    tid(page, "ship-line1").fill("12 Analytical Row")
    tid(page, "ship-city").fill("London")
    tid(page, "ship-postal-code").fill("N1 9GU")
    tid(page, "ship-country").fill("GB")
    if card:
        # The emulator's fake card element: plain inputs (number, MM, YY, CVC, postal code).
        new_card = tid(page, "use-new-card")
        if new_card.count() and new_card.get_attribute("type") == "radio":
            new_card.check()
        tid(page, "card-number").fill(card)
        tid(page, "card-exp-month").fill("12")
        tid(page, "card-exp-year").fill("34")
        tid(page, "card-cvc").fill("123")
        tid(page, "card-postal-code").fill("42424")


def place_order(page: Page, items: dict[str, int], card: str | None) -> dict:
    """Fills and submits the form; returns the order the API answered (202)."""
    fill_order_form(page, items, card)
    return submit_order(page)


def submit_order(page: Page) -> dict:
    with page.expect_response(
        lambda r: r.url.endswith("/api/orders") and r.request.method == "POST", timeout=20_000
    ) as answer:
        tid(page, "place-order").click()
    response = answer.value
    assert response.status == 202, response.text()
    return response.json()["data"]["order"]


def row(page: Page, order_id: str):
    return tid(page, f"order-row-{order_id}")


def row_status(page: Page, order_id: str, scope: str | None = None):
    base = tid(page, scope) if scope else page
    return base.locator(f'[data-testid="order-row-{order_id}"] [data-testid="order-status"]')


def status_log(page: Page, order_id: str) -> list[str]:
    """Every status the order's row showed in this document (see STATUS_RECORDER)."""
    return page.evaluate("id => (window.__statusLog || {})[id] || []", order_id)


def api_get(page: Page, path: str) -> dict:
    """GET the API as the page's signed-in user (its token from localStorage)."""
    token = page.evaluate("localStorage.getItem('oms.token')")
    response = page.request.get(path, headers={"Authorization": f"Bearer {token}"})
    assert response.ok, response.text()
    return response.json()


def unlabelled_controls(page: Page) -> list[str]:
    """Visible form controls without an accessible name (label, aria-label, aria-labelledby)."""
    return page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea')]
          .filter(el => el.type !== 'hidden' && el.offsetParent !== null)
          .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                        && !el.getAttribute('aria-labelledby'))
          .map(el => el.outerHTML.slice(0, 120))"""
    )
