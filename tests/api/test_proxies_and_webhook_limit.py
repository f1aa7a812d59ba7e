"""Client addresses behind a proxy (TRUSTED_PROXIES) and the webhook's own rate limit."""

from __future__ import annotations

import uuid

import httpx
from fastapi.testclient import TestClient

from devstack import processes


def _app(**overrides):
    from api.main import create_app
    from core.settings import get_settings

    return create_app(get_settings().model_copy(update=overrides))


def _products(c, forwarded_for: str | None = None) -> int:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return c.get("/api/products", headers=headers).status_code


def test_behind_a_trusted_proxy_each_caller_has_its_own_bucket(clean_data) -> None:
    app = _app(rate_limit_default="3/minute", trusted_proxies="10.0.0.0/8")
    with TestClient(app, raise_server_exceptions=False, client=("10.0.0.7", 1)) as lb:
        assert [_products(lb, "203.0.113.1") for _ in range(3)] == [200] * 3
        assert _products(lb, "203.0.113.1") == 429
        # Another caller behind the same load balancer is not in the first one's bucket.
        assert _products(lb, "203.0.113.2") == 200
        # A client-supplied hop before the real one does not buy a fresh bucket.
        assert _products(lb, "198.51.100.9, 203.0.113.1") == 429


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(clean_data) -> None:
    app = _app(rate_limit_default="3/minute", trusted_proxies="10.0.0.0/8")
    with TestClient(app, raise_server_exceptions=False, client=("192.0.2.50", 1)) as c:
        codes = [_products(c, f"203.0.113.{i}") for i in range(5)]
    assert codes == [200, 200, 200, 429, 429]


def test_uvicorn_with_the_shipped_flags_does_not_trust_local_forwarded_for(
    services, artifacts_dir
) -> None:
    """uvicorn alone trusts X-Forwarded-For from 127.0.0.1; started as devstack, Dockerfile
    and compose start it (--forwarded-allow-ips=$TRUSTED_PROXIES), a spoofed header from a
    local peer does not escape the limit."""
    from core.settings import get_settings

    port = processes.free_port()
    proc = processes.spawn(
        processes.api_args(port, f"--forwarded-allow-ips={get_settings().trusted_proxies}"),
        env={"RATE_LIMIT_DEFAULT": "3/minute", "TRUSTED_PROXIES": ""},
        log_path=artifacts_dir / f"proxy-api-{uuid.uuid4().hex[:6]}.log",
    )
    try:
        processes.wait_port(port, 60, proc)
        base = f"http://127.0.0.1:{port}"
        codes = [
            httpx.get(
                f"{base}/api/products", headers={"X-Forwarded-For": f"203.0.113.{i}"}, timeout=10
            ).status_code
            for i in range(5)
        ]
    finally:
        processes.stop(proc)
    assert codes[3:] == [429, 429], codes


def test_the_webhook_is_not_throttled_by_public_traffic(clean_data) -> None:
    app = _app(rate_limit_default="3/minute", rate_limit_webhook="5/minute")
    with TestClient(app, raise_server_exceptions=False) as c:
        assert [_products(c) for _ in range(4)] == [200, 200, 200, 429]
        # Same address (say, the load balancer): the webhook still reaches its handler.
        r = c.post(
            "/api/payments/webhook", content=b"{}", headers={"Stripe-Signature": "t=1,v1=00"}
        )
        assert r.status_code == 400 and r.json()["code"] == "INVALID_SIGNATURE", r.text
        # And has a limit of its own.
        codes = [
            c.post(
                "/api/payments/webhook", content=b"{}", headers={"Stripe-Signature": "x"}
            ).status_code
            for _ in range(5)
        ]
        assert codes == [400, 400, 400, 400, 429], codes
