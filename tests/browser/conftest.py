"""Browser tests: the dashboard in Debian's headless Chromium, driven by Playwright.

The whole stack runs for real: SecantusDB, localstripe (its fake Stripe.js serves the card
element), Redis, a Celery worker, and the API under uvicorn on a free port (the session
`live_api` fixture), with the emulator's webhook pointed at it. Playwright never downloads a
browser here: it drives
/usr/bin/chromium (`make browser-deps` installs the `chromium` package).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from devstack.stripe_emulator import register_webhook

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(__file__).parent / "artifacts"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
PRODUCTS = [
    # sku, name, price cents, stock, low-stock threshold
    ("WIDGET-1", "Blue widget", 1999, 500, 5),
    ("GADGET-2", "Pocket gadget", 4999, 500, 5),
    ("CABLE-3", "USB-C cable", 899, 3, 5),  # below its threshold: shows under low stock
]


@dataclass
class Stack:
    url: str
    stripe_url: str
    admin_email: str
    admin_password: str
    worker: object
    skus: list[str] = field(default_factory=list)


@pytest.fixture
def stack(worker, live_api: str, stripe_server: dict) -> Stack:
    """Clean data, the catalog and the admin seeded, the emulator's webhook -> our API."""
    from core.settings import get_settings
    from models.product import Product
    from models.user import User

    settings = get_settings()
    for sku, name, price, stock, threshold in PRODUCTS:
        Product.create(
            sku=sku,
            name=name,
            price_cents=price,
            currency=settings.currency,
            stock=stock,
            low_stock_threshold=threshold,
        )
    User.ensure_admin(settings.admin_email, settings.admin_password)
    # Registrations live in the emulator's memory only: (re)register for every test.
    register_webhook(
        stripe_server["url"],
        f"{live_api}/api/payments/webhook",
        settings.stripe_webhook_secret,
    )
    return Stack(
        url=live_api,
        stripe_url=stripe_server["url"],
        admin_email=settings.admin_email,
        admin_password=settings.admin_password,
        worker=worker,
        skus=[p[0] for p in PRODUCTS],
    )


@pytest.fixture(scope="session")
def browser() -> Iterator:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser-deps` (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


# Records every status text each order row shows, from the first paint on, so a test can
# tell the row went pending -> ... -> shipped in place (no reload in between).
STATUS_RECORDER = """
(() => {
  window.__statusLog = window.__statusLog || {};
  const record = () => {
    for (const row of document.querySelectorAll('[data-testid^="order-row-"]')) {
      const id = row.dataset.testid.slice('order-row-'.length);
      const el = row.querySelector('[data-testid="order-status"]');
      if (!el) continue;
      const log = (window.__statusLog[id] = window.__statusLog[id] || []);
      const text = el.dataset.status || el.textContent;
      if (log[log.length - 1] !== text) log.push(text);
    }
  };
  const options = { subtree: true, childList: true, characterData: true, attributes: true };
  new MutationObserver(record).observe(document, options);
})();
"""


@dataclass
class Browsing:
    """A page plus what went wrong in it (uncaught errors, CSP violations)."""

    page: object
    context: object
    errors: list[str] = field(default_factory=list)

    def assert_clean(self) -> None:
        assert not self.errors, "errors in the page:\n" + "\n".join(self.errors)


@pytest.fixture
def open_page(browser, stack: Stack, request) -> Iterator[Callable[..., Browsing]]:
    """Factory: a fresh browser context (its own storage: another user) with one page."""
    opened: list[Browsing] = []

    def _open(viewport: dict | None = None) -> Browsing:
        context = browser.new_context(viewport=viewport or DESKTOP, base_url=stack.url)
        context.set_default_timeout(15_000)
        context.add_init_script(STATUS_RECORDER)
        page = context.new_page()
        b = Browsing(page=page, context=context)
        page.on("pageerror", lambda exc: b.errors.append(f"pageerror: {exc}"))

        def on_console(msg) -> None:
            text = msg.text
            if msg.type == "error" and ("Content Security Policy" in text or "Refused to" in text):
                b.errors.append(f"console: {text}")

        page.on("console", on_console)
        opened.append(b)
        return b

    yield _open
    failed = getattr(request.node, "rep_call", None)
    for n, b in enumerate(opened):
        if failed is not None and failed.failed:
            SHOTS.mkdir(exist_ok=True)
            name = re.sub(r"\W+", "-", request.node.name)
            try:
                b.page.screenshot(path=str(SHOTS / f"FAILED-{name}-{n}.png"), full_page=True)
            except Exception:  # best effort on the way out
                pass
        b.context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def shot(page, name: str) -> Path:
    """Full-page screenshot into tests/browser/artifacts/ (git-ignored)."""
    SHOTS.mkdir(exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def wait_until(
    predicate: Callable[[], object], timeout: float = 20.0, what: str = "", page=None
) -> object:
    """Polls `predicate`; with `page`, waits through Playwright so its event handlers run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if page is not None:
            page.wait_for_timeout(200)
        else:
            time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
