"""The production page's CSP lets Stripe.js load (an API started as it is deployed).

A real uvicorn with APP_ENV=production and Stripe's own API base: the policy of ``/`` must
allow Stripe's documented hosts and the page's own WebSocket origin, and nothing broader.
Only ``/`` of our own server is requested: nothing goes to Stripe.
"""

from __future__ import annotations

import base64
import os
import secrets

import httpx

from devstack import processes
from tests.conftest import ARTIFACTS


def _directives(csp: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in csp.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


def test_production_csp_allows_stripe_js_and_only_our_websocket(services) -> None:
    port = processes.free_port()
    public = "https://shop.example.com"
    env = {
        "APP_ENV": "production",
        "STRIPE_API_BASE": "https://api.stripe.com",
        "STRIPE_API_KEY": "sk_live_" + secrets.token_hex(12),
        "STRIPE_PUBLISHABLE_KEY": "pk_live_" + secrets.token_hex(12),
        "STRIPE_WEBHOOK_SECRET": "whsec_" + secrets.token_hex(16),
        "JWT_SECRET": secrets.token_hex(32),
        "ADMIN_PASSWORD": secrets.token_urlsafe(18),
        "FLOWER_BASIC_AUTH": "ops:" + secrets.token_urlsafe(12),
        "DATA_KEYS": "k1:" + base64.b64encode(os.urandom(32)).decode(),
        "PUBLIC_BASE_URL": public,
        # What production also refuses to start without (issue 15).
        "ADMIN_EMAIL": "ops@shop.example.com",
        "METRICS_PUBLIC": "false",
        "METRICS_TOKEN": secrets.token_urlsafe(24),
    }
    proc = processes.spawn(
        processes.api_args(port, "--no-access-log"),
        env=env,
        log_path=ARTIFACTS / "production-api.log",
    )
    try:
        processes.wait_port(port, 30, proc)
        r = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
    finally:
        processes.stop(proc)
    assert r.status_code == 200, (ARTIFACTS / "production-api.log").read_text()[-2000:]
    d = _directives(r.headers["content-security-policy"])
    for host in ("https://js.stripe.com", "https://*.js.stripe.com"):
        assert host in d["script-src"] and host in d["frame-src"]
    assert "https://hooks.stripe.com" in d["frame-src"]
    assert "https://api.stripe.com" in d["connect-src"]
    assert d["connect-src"] == ["'self'", "wss://shop.example.com", "https://api.stripe.com"]
    # Not any WebSocket host, and Stripe's API host does not serve scripts.
    assert "ws:" not in d["connect-src"] and "wss:" not in d["connect-src"]
    assert "https://api.stripe.com" not in d["script-src"]
    assert d["default-src"] == ["'self'"] and d["object-src"] == ["'none'"]


def test_dev_csp_allows_the_emulator_and_the_page_websocket(client) -> None:
    from core.settings import get_settings

    settings = get_settings()
    d = _directives(client.get("/").headers["content-security-policy"])
    emulator = settings.stripe_api_base.rstrip("/")
    assert d["script-src"] == ["'self'", emulator] and d["frame-src"] == ["'self'", emulator]
    page_ws = settings.public_base_url.replace("http://", "ws://")
    assert d["connect-src"] == ["'self'", page_ws, emulator]
