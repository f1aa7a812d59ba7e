"""Every POST the gateway makes to Stripe carries a deterministic Idempotency-Key.

localstripe ignores the header, so what goes over the wire is observed instead: a small
recording reverse proxy sits between the real ``stripe`` SDK and a real localstripe and
notes each request's method, path and ``Idempotency-Key`` before forwarding it unchanged.
The SDK sends no key of its own with network retries off (``max_network_retries=0``), so
every key seen is ours.
"""

from __future__ import annotations

import http.client
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

import pytest
import stripe

from gateways.stripe_gateway import StripeGateway
from tests.integration.test_stripe_gateway import (
    CARD_OK,
    SECRET_KEY,
    launch,
    make_settings,
    new_pm,
    new_token,
)


class _Proxy(BaseHTTPRequestHandler):
    upstream: tuple[str, int] = ("127.0.0.1", 0)
    seen: list[tuple[str, str, str | None]] = []

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        self.seen.append(
            (self.command, self.path.split("?")[0], self.headers.get("Idempotency-Key"))
        )
        conn = http.client.HTTPConnection(*self.upstream, timeout=10)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        conn.request(self.command, self.path, body=body, headers=headers)
        answer = conn.getresponse()
        data = answer.read()
        self.send_response(answer.status)
        for k, v in answer.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        conn.close()

    do_GET = do_POST = do_DELETE = _forward

    def log_message(self, *args) -> None:  # quiet
        pass


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StripeGateway, list, str]]:
    log_path = tmp_path_factory.mktemp("localstripe-idem") / "launcher.log"
    with launch("--from-scratch", "--quiet", log_path=log_path) as (_, base):
        parsed = urlparse(base)
        handler = type("Proxy", (_Proxy,), {"upstream": (parsed.hostname, parsed.port), "seen": []})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        proxy = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            yield StripeGateway(make_settings(proxy)), handler.seen, base
        finally:
            server.shutdown()


def _posts(seen: list, since: int) -> list[tuple[str, str | None]]:
    return [(path, key) for method, path, key in seen[since:] if method == "POST"]


def test_every_gateway_post_carries_a_key_and_a_retry_sends_the_same(recorded) -> None:
    gateway, seen, base = recorded
    raw = stripe.StripeClient(SECRET_KEY, base_addresses={"api": base})  # the "browser"
    start = len(seen)
    user = uuid.uuid4().hex[:8]
    customer = gateway.ensure_customer(
        email=f"{user}@example.com", name=None, user_id=user, existing_id=None
    )
    pm = gateway.attach_payment_method(customer, new_pm(raw, CARD_OK)).id
    gateway.attach_token(customer, new_token(raw, CARD_OK))
    order_id = f"ord_{user}"
    intent = gateway.create_intent(
        order_id=order_id, amount_cents=1200, currency="usd", customer_id=customer
    )
    gateway.set_intent_payment_method(intent.id, pm)
    gateway.confirm_intent(intent.id, attempt=f"{pm}:v3")
    gateway.refund(intent_id=intent.id, amount_cents=200, idempotency_key="k-part")
    spare = gateway.create_intent(
        order_id=f"{order_id}-b", amount_cents=500, currency="usd", customer_id=customer
    )
    gateway.cancel_intent(spare.id)
    detach_me = gateway.attach_payment_method(customer, new_pm(raw, CARD_OK)).id
    gateway.detach_payment_method(detach_me)

    posts = _posts(seen, start)
    paths = [p for p, _ in posts]
    for expected in (
        "/v1/customers",
        f"/v1/payment_methods/{pm}/attach",
        f"/v1/customers/{customer}/sources",
        "/v1/payment_intents",
        f"/v1/payment_intents/{intent.id}",
        f"/v1/payment_intents/{intent.id}/confirm",
        "/v1/refunds",
        f"/v1/payment_intents/{spare.id}/cancel",
        f"/v1/payment_methods/{detach_me}/detach",
    ):
        assert expected in paths, (expected, paths)
    assert all(key for _, key in posts), posts  # not one POST without a key
    assert len({key for _, key in posts}) == len(posts)  # one key per logical request

    # Doing the same logical request again (a retry after a lost answer) sends the same key.
    keys: dict[str, str | None] = {}
    for path, key in posts:
        keys.setdefault(path, key)  # the first request to each path
    again = len(seen)
    gateway.ensure_customer(email=f"{user}@example.com", name=None, user_id=user, existing_id=None)
    gateway.create_intent(
        order_id=order_id, amount_cents=1200, currency="usd", customer_id=customer
    )
    gateway.confirm_intent(intent.id, attempt=f"{pm}:v3")
    repeated = dict(_posts(seen, again))
    assert repeated["/v1/customers"] == keys["/v1/customers"]
    assert repeated["/v1/payment_intents"] == keys["/v1/payment_intents"]
    assert (
        repeated[f"/v1/payment_intents/{intent.id}/confirm"]
        == keys[f"/v1/payment_intents/{intent.id}/confirm"]
    )
    # A genuinely new attempt (another card / order version) gets a new key.
    new_attempt = len(seen)
    gateway.confirm_intent(intent.id, attempt=f"{pm}:v4")
    assert (
        dict(_posts(seen, new_attempt))[f"/v1/payment_intents/{intent.id}/confirm"]
        != keys[f"/v1/payment_intents/{intent.id}/confirm"]
    )
