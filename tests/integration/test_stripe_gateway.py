"""StripeGateway against a real localstripe started by our launcher (no mocks).

The module starts one emulator (``--from-scratch``: nothing on disk) on a free port; the
persistence tests start their own with ``--store`` in a tmp dir.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import stripe

from core.settings import Settings
from devstack.stripe_emulator import authenticate_3ds, register_webhook
from gateways.stripe_gateway import (
    IntentInfo,
    NotFoundInStripe,
    StripeGateway,
    WebhookSignatureError,
)
from workflows.errors import GatewayConfigError, PermanentError, TransientError

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET_KEY = "sk_test_gateway_tests"
WEBHOOK_SECRET = "whsec_gateway_tests"
FIXED_PICKLE = Path("/tmp/localstripe.pickle")  # the stock localstripe file we must never touch

CARD_OK = "4242424242424242"
CARD_DECLINED_AT_ATTACH = "4000000000000002"
CARD_DECLINED_AT_CONFIRM = "4000000000000341"
CARD_3DS = "4000002500003155"


# --------------------------------------------------------------------------- emulator
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"localstripe launcher exited early with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"localstripe did not listen on {port} within {timeout}s")


@contextmanager
def launch(*args: str, log_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Run the launcher on a free port; yields (process, api_base); SIGTERM at exit."""
    port = _free_port()
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "devstack.localstripe_launcher", "--port", str(port), *args],
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_port(port, proc)
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture(scope="module")
def api_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log_path = tmp_path_factory.mktemp("localstripe") / "launcher.log"
    with launch("--from-scratch", "--quiet", log_path=log_path) as (_, base):
        yield base


def make_settings(api_base: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "stripe_api_base": api_base,
        "stripe_api_key": SECRET_KEY,
        "stripe_webhook_secret": WEBHOOK_SECRET,
        "stripe_webhook_tolerance": 300,
        "stripe_timeout_seconds": 5.0,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="module")
def gateway(api_base: str) -> StripeGateway:
    return StripeGateway(make_settings(api_base))


@pytest.fixture(scope="module")
def raw(api_base: str) -> stripe.StripeClient:
    """The SDK used directly, only to do what a browser would (raw card numbers)."""
    return stripe.StripeClient(SECRET_KEY, base_addresses={"api": api_base})


def new_pm(raw: stripe.StripeClient, number: str) -> str:
    card = {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"}
    return raw.v1.payment_methods.create({"type": "card", "card": card}).id


def new_token(raw: stripe.StripeClient, number: str) -> str:
    card = {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"}
    return raw.v1.tokens.create({"card": card}).id


def new_customer(gateway: StripeGateway) -> str:
    user = uuid.uuid4().hex[:8]
    return gateway.ensure_customer(
        email=f"{user}@example.com", name="Test User", user_id=user, existing_id=None
    )


def paid_intent(gateway: StripeGateway, raw: stripe.StripeClient, amount: int = 1000) -> IntentInfo:
    customer = new_customer(gateway)
    pm = gateway.attach_payment_method(customer, new_pm(raw, CARD_OK))
    intent = gateway.create_intent(
        order_id=f"ord_{uuid.uuid4().hex[:10]}",
        amount_cents=amount,
        currency="usd",
        customer_id=customer,
        payment_method_id=pm.id,
    )
    confirmed = gateway.confirm_intent(intent.id)
    assert confirmed.status == "succeeded"
    return confirmed


# --------------------------------------------------------------------------- customers
def test_ensure_customer_creates_then_reuses(gateway: StripeGateway, raw: stripe.StripeClient):
    customer = gateway.ensure_customer(
        email="a@example.com", name="A", user_id="user-1", existing_id=None
    )
    assert customer.startswith("cus_")
    assert raw.v1.customers.retrieve(customer).metadata["user_id"] == "user-1"

    again = gateway.ensure_customer(
        email="a@example.com", name="A", user_id="user-1", existing_id=customer
    )
    assert again == customer

    replaced = gateway.ensure_customer(
        email="a@example.com", name=None, user_id="user-1", existing_id="cus_doesnotexist"
    )
    assert replaced.startswith("cus_") and replaced != customer


# --------------------------------------------------------------------------- payment methods
def test_attach_list_detach_payment_method(gateway: StripeGateway, raw: stripe.StripeClient):
    customer = new_customer(gateway)
    pm = gateway.attach_payment_method(customer, new_pm(raw, CARD_OK))
    assert (pm.customer, pm.brand, pm.last4) == (customer, "visa", "4242")
    assert (pm.exp_month, pm.exp_year) == (12, 2030)
    # Attaching again to the same customer is a no-op.
    assert gateway.attach_payment_method(customer, pm.id) == pm

    assert gateway.get_payment_method(pm.id).customer == customer
    assert [m.id for m in gateway.list_payment_methods(customer)] == [pm.id]

    gateway.detach_payment_method(pm.id)
    assert gateway.get_payment_method(pm.id).customer is None
    assert gateway.list_payment_methods(customer) == []
    gateway.detach_payment_method(pm.id)  # already detached: harmless


def test_attach_declined_card_is_permanent(gateway: StripeGateway, raw: stripe.StripeClient):
    customer = new_customer(gateway)
    with pytest.raises(PermanentError) as info:
        gateway.attach_payment_method(customer, new_pm(raw, CARD_DECLINED_AT_ATTACH))
    assert info.value.code == "card_declined"
    assert "declined" in info.value.message
    assert not isinstance(info.value, NotFoundInStripe)


def test_attach_refuses_another_customers_card(gateway: StripeGateway, raw: stripe.StripeClient):
    owner, intruder = new_customer(gateway), new_customer(gateway)
    pm = gateway.attach_payment_method(owner, new_pm(raw, CARD_OK))
    with pytest.raises(PermanentError) as info:
        gateway.attach_payment_method(intruder, pm.id)
    assert info.value.code == "payment_method_owned_elsewhere"
    assert gateway.get_payment_method(pm.id).customer == owner


def test_token_card_is_listed_charged_and_removed(gateway: StripeGateway, raw: stripe.StripeClient):
    customer = new_customer(gateway)
    card = gateway.attach_token(customer, new_token(raw, CARD_OK))
    assert card.id.startswith("card_")
    assert (card.customer, card.brand, card.last4) == (customer, "visa", "4242")
    assert gateway.get_payment_method(card.id) == card
    assert [m.id for m in gateway.list_payment_methods(customer)] == [card.id]

    intent = gateway.create_intent(
        order_id="ord_token",
        amount_cents=1500,
        currency="usd",
        customer_id=customer,
        payment_method_id=card.id,
    )
    assert gateway.confirm_intent(intent.id).status == "succeeded"

    gateway.detach_payment_method(card.id)
    assert gateway.list_payment_methods(customer) == []


def test_token_declined_at_attach(gateway: StripeGateway, raw: stripe.StripeClient):
    customer = new_customer(gateway)
    with pytest.raises(PermanentError) as info:
        gateway.attach_token(customer, new_token(raw, CARD_DECLINED_AT_ATTACH))
    assert info.value.code == "card_declined"


def test_missing_objects_are_not_found(gateway: StripeGateway):
    with pytest.raises(NotFoundInStripe) as info:
        gateway.retrieve_intent("pi_doesnotexist")
    assert info.value.code == "resource_missing"
    with pytest.raises(NotFoundInStripe):
        gateway.get_payment_method("pm_doesnotexist")
    with pytest.raises(NotFoundInStripe):
        gateway.list_payment_methods("cus_doesnotexist")


# --------------------------------------------------------------------------- intents
def test_intent_succeeds(gateway: StripeGateway, raw: stripe.StripeClient):
    customer = new_customer(gateway)
    pm = gateway.attach_payment_method(customer, new_pm(raw, CARD_OK))
    intent = gateway.create_intent(
        order_id="ord_ok",
        amount_cents=2599,
        currency="usd",
        customer_id=customer,
        payment_method_id=pm.id,
    )
    assert intent.status == "requires_confirmation"
    assert (intent.amount, intent.currency, intent.order_id) == (2599, "usd", "ord_ok")
    assert (intent.customer, intent.payment_method) == (customer, pm.id)
    assert intent.client_secret and intent.client_secret not in repr(intent)

    confirmed = gateway.confirm_intent(intent.id)
    assert confirmed.status == "succeeded"
    assert confirmed.last_error_code is None and confirmed.refunded_cents == 0
    assert gateway.retrieve_intent(intent.id).status == "succeeded"
    # A retried confirm (lost response) reports the state instead of failing.
    assert gateway.confirm_intent(intent.id).status == "succeeded"


def test_payment_method_set_after_creation(gateway: StripeGateway, raw: stripe.StripeClient):
    customer = new_customer(gateway)
    intent = gateway.create_intent(
        order_id="ord_later", amount_cents=500, currency="usd", customer_id=customer
    )
    assert intent.status == "requires_payment_method" and intent.payment_method is None
    with pytest.raises(PermanentError):
        gateway.confirm_intent(intent.id)  # nothing to confirm with: a caller bug, not a state
    pm = gateway.attach_payment_method(customer, new_pm(raw, CARD_OK))
    updated = gateway.set_intent_payment_method(intent.id, pm.id)
    assert (updated.status, updated.payment_method) == ("requires_confirmation", pm.id)
    assert gateway.confirm_intent(intent.id).status == "succeeded"


def test_decline_at_confirm_returns_state(gateway: StripeGateway, raw: stripe.StripeClient):
    customer = new_customer(gateway)
    pm = gateway.attach_payment_method(customer, new_pm(raw, CARD_DECLINED_AT_CONFIRM))
    intent = gateway.create_intent(
        order_id="ord_declined",
        amount_cents=1000,
        currency="usd",
        customer_id=customer,
        payment_method_id=pm.id,
    )
    declined = gateway.confirm_intent(intent.id)
    assert declined.status == "requires_payment_method"
    assert declined.last_error_code == "card_declined"
    assert declined.decline_code == "card_declined"
    assert declined.last_error_message == "Your card was declined."
    assert gateway.list_refunds(intent.id) == []


def test_three_d_secure(gateway: StripeGateway, raw: stripe.StripeClient, api_base: str):
    customer = new_customer(gateway)
    results = {}
    for success in (True, False):
        pm = gateway.attach_payment_method(customer, new_pm(raw, CARD_3DS))
        intent = gateway.create_intent(
            order_id=f"ord_3ds_{success}",
            amount_cents=1000,
            currency="usd",
            customer_id=customer,
            payment_method_id=pm.id,
        )
        pending = gateway.confirm_intent(intent.id)
        assert pending.status == "requires_action"
        assert pending.next_action_type == "use_stripe_sdk"
        assert pending.client_secret
        authenticate_3ds(api_base, intent.id, pending.client_secret, success, SECRET_KEY)
        results[success] = gateway.retrieve_intent(intent.id)
    assert results[True].status == "succeeded" and results[True].next_action_type is None
    assert results[False].status == "requires_payment_method"
    assert results[False].last_error_code == "payment_intent_authentication_failure"


def test_cancel_is_idempotent(gateway: StripeGateway, raw: stripe.StripeClient):
    customer = new_customer(gateway)
    intent = gateway.create_intent(
        order_id="ord_cancel", amount_cents=700, currency="usd", customer_id=customer
    )
    assert gateway.cancel_intent(intent.id).status == "canceled"
    assert gateway.cancel_intent(intent.id).status == "canceled"
    # A succeeded intent cannot be cancelled: its state comes back, no exception.
    paid = paid_intent(gateway, raw)
    assert gateway.cancel_intent(paid.id).status == "succeeded"


def test_refund_partial_then_rest(gateway: StripeGateway, raw: stripe.StripeClient):
    paid = paid_intent(gateway, raw, amount=1000)
    first = gateway.refund(intent_id=paid.id, amount_cents=300, idempotency_key="r1-" + paid.id)
    assert (first.amount, first.status, first.payment_intent) == (300, "succeeded", paid.id)
    after_first = gateway.retrieve_intent(paid.id)
    assert (after_first.status, after_first.refunded_cents) == ("succeeded", 300)

    rest = gateway.refund(intent_id=paid.id, amount_cents=None, idempotency_key="r2-" + paid.id)
    assert rest.amount == 700  # what was left, although localstripe would refund 1000 again
    assert gateway.retrieve_intent(paid.id).refunded_cents == 1000
    refunds = gateway.list_refunds(paid.id)
    assert {r.id for r in refunds} == {first.id, rest.id}

    # Same key again (a retried task): the same refund, nothing new refunded.
    assert (
        gateway.refund(intent_id=paid.id, amount_cents=300, idempotency_key="r1-" + paid.id)
        == first
    )
    with pytest.raises(PermanentError) as info:
        gateway.refund(intent_id=paid.id, amount_cents=None, idempotency_key="r3-" + paid.id)
    assert info.value.code == "charge_already_refunded"

    charges = gateway.list_charges(paid.customer or "")
    assert [c.payment_intent for c in charges] == [paid.id]
    assert charges[0].amount == 1000 and charges[0].paid


def test_refund_rest_explicit_amount(gateway: StripeGateway, raw: stripe.StripeClient):
    paid = paid_intent(gateway, raw, amount=1000)
    gateway.refund(intent_id=paid.id, amount_cents=400, idempotency_key="a-" + paid.id)
    with pytest.raises(PermanentError) as info:
        gateway.refund(intent_id=paid.id, amount_cents=601, idempotency_key="c-" + paid.id)
    assert info.value.code == "amount_too_large"
    gateway.refund(intent_id=paid.id, amount_cents=600, idempotency_key="b-" + paid.id)
    assert gateway.retrieve_intent(paid.id).refunded_cents == 1000
    assert sum(r.amount for r in gateway.list_refunds(paid.id)) == 1000


def test_refund_of_unpaid_intent_is_permanent(gateway: StripeGateway):
    customer = new_customer(gateway)
    intent = gateway.create_intent(
        order_id="ord_unpaid", amount_cents=100, currency="usd", customer_id=customer
    )
    with pytest.raises(PermanentError) as info:
        gateway.refund(intent_id=intent.id, amount_cents=None, idempotency_key="x-" + intent.id)
    assert info.value.code == "intent_not_succeeded"


def test_list_intents_by_order_metadata(gateway: StripeGateway, raw: stripe.StripeClient):
    started = int(time.time()) - 1
    customer = new_customer(gateway)
    order_id = f"ord_{uuid.uuid4().hex[:10]}"
    first = gateway.create_intent(
        order_id=order_id, amount_cents=100, currency="usd", customer_id=customer
    )
    gateway.cancel_intent(first.id)
    second = gateway.create_intent(
        order_id=order_id, amount_cents=100, currency="usd", customer_id=customer
    )
    gateway.create_intent(
        order_id="ord_other", amount_cents=100, currency="usd", customer_id=customer
    )

    for found in (
        gateway.list_intents_for_order(order_id),
        gateway.list_intents_for_order(order_id, customer_id=customer),
    ):
        assert {i.id for i in found} == {first.id, second.id}
        assert all(i.order_id == order_id for i in found)
    assert gateway.list_intents_for_order(order_id, customer_id=new_customer(gateway)) == []
    assert gateway.list_intents_for_order("ord_nobody") == []

    recent = gateway.list_intents(created_after=started)
    assert {first.id, second.id} <= {i.id for i in recent}
    assert [i.created for i in recent] == sorted((i.created for i in recent), reverse=True)
    assert len(gateway.list_intents(created_after=started, limit=1)) == 1
    assert gateway.list_intents(created_after=int(time.time()) + 3600) == []


# --------------------------------------------------------------------------- webhooks
def sign(body: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


EVENT = {
    "id": "evt_test_1",
    "object": "event",
    "type": "payment_intent.canceled",
    "created": 1_700_000_000,
    "data": {"object": {"id": "pi_123", "object": "payment_intent", "status": "canceled"}},
}


def test_verify_webhook_accepts_own_signature(gateway: StripeGateway):
    body = json.dumps(EVENT).encode()
    event = gateway.verify_webhook(body, sign(body))
    assert event == EVENT
    assert type(event) is dict


@pytest.mark.parametrize(
    ("case", "body", "header"),
    [
        ("bad signature", json.dumps(EVENT).encode(), sign(b"{}")),
        ("wrong secret", json.dumps(EVENT).encode(), sign(json.dumps(EVENT).encode(), "whsec_x")),
        ("stale", json.dumps(EVENT).encode(), None),  # signed below, 301 s old
        ("missing header", json.dumps(EVENT).encode(), ""),
        ("garbage header", json.dumps(EVENT).encode(), "nonsense"),
        ("malformed json", b"{not json", None),
        ("json not an object", b"[1, 2]", None),
        ("not utf-8", b"\xff\xfe", None),
    ],
)
def test_verify_webhook_rejects(gateway: StripeGateway, case: str, body: bytes, header: str | None):
    if header is None:
        age = 301 if case == "stale" else 0
        header = sign(body, timestamp=int(time.time()) - age)
    with pytest.raises(WebhookSignatureError):
        gateway.verify_webhook(body, header)


def test_verify_webhook_rejects_none_header(gateway: StripeGateway):
    with pytest.raises(WebhookSignatureError):
        gateway.verify_webhook(json.dumps(EVENT).encode(), None)


class _Recorder(BaseHTTPRequestHandler):
    received: list[tuple[bytes, str | None]]

    def do_POST(self) -> None:  # http.server's method naming
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.received.append((body, self.headers.get("Stripe-Signature")))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass


def test_registered_webhook_is_delivered_and_verifies(
    gateway: StripeGateway, raw: stripe.StripeClient, api_base: str
):
    received: list[tuple[bytes, str | None]] = []
    handler = type("Recorder", (_Recorder,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/api/payments/webhook"
        register_webhook(api_base, url, WEBHOOK_SECRET, hook_id="gateway-test")
        paid = paid_intent(gateway, raw)

        deadline = time.monotonic() + 5
        event: dict[str, Any] | None = None
        while event is None and time.monotonic() < deadline:
            for body, header in list(received):
                candidate = gateway.verify_webhook(body, header)
                obj = candidate["data"]["object"]
                if candidate["type"] == "payment_intent.succeeded" and obj["id"] == paid.id:
                    event = candidate
            time.sleep(0.1)
        assert event is not None, f"no payment_intent.succeeded delivered ({len(received)} POSTs)"
        assert event["data"]["object"]["metadata"]["order_id"] == paid.order_id
    finally:
        # Point the hook at a closed port rather than leaving it on a dead server.
        register_webhook(api_base, f"http://127.0.0.1:{_free_port()}/", "whsec_off", "gateway-test")
        server.shutdown()
        server.server_close()


# --------------------------------------------------------------------------- config and failures
def test_publishable_config(gateway: StripeGateway, api_base: str):
    config = gateway.publishable_config()
    assert config["stripeJsUrl"] == f"{api_base}/js.stripe.com/v3/"
    assert config["publishableKey"].startswith("pk_")
    real = StripeGateway(make_settings("https://api.stripe.com"))
    assert real.publishable_config()["stripeJsUrl"] == "https://js.stripe.com/v3/"


def test_ping(gateway: StripeGateway):
    gateway.ping()
    gateway.ping(0.8)


def test_emulator_down_is_transient_and_fast():
    down = StripeGateway(make_settings(f"http://127.0.0.1:{_free_port()}"))
    started = time.monotonic()
    with pytest.raises(TransientError):
        down.retrieve_intent("pi_whatever")
    with pytest.raises(TransientError):
        down.ping(0.5)
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("key", ["sk_", "bad_key_12345"])
def test_bad_api_key_is_a_config_error(api_base: str, key: str):
    # localstripe accepts any "sk_" key longer than 5 characters and 401s the rest.
    misconfigured = StripeGateway(make_settings(api_base, stripe_api_key=key))
    with pytest.raises(GatewayConfigError):
        misconfigured.ping()
    with pytest.raises(GatewayConfigError):
        misconfigured.ensure_customer(
            email="x@example.com", name=None, user_id="u", existing_id=None
        )


# --------------------------------------------------------------------------- launcher persistence
def _fixed_pickle_state() -> tuple[bool, float | None]:
    return FIXED_PICKLE.exists(), FIXED_PICKLE.stat().st_mtime if FIXED_PICKLE.exists() else None


def test_launcher_store_persists_across_restarts(tmp_path: Path):
    before = _fixed_pickle_state()
    store = tmp_path / "data" / "localstripe.pickle"
    log_path = tmp_path / "launcher.log"

    # 1. A write is dumped by the coalescing timer (no shutdown needed): survives SIGKILL.
    with launch("--store", str(store), "--quiet", log_path=log_path) as (proc, base):
        gw = StripeGateway(make_settings(base))
        first = new_customer(gw)
        deadline = time.monotonic() + 5
        while not store.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.7)  # let the timer dump the last write of the customer creation
        stop(proc, signal.SIGKILL)
    assert store.exists()

    # 2. The store is loaded; a write just before SIGTERM is flushed at shutdown.
    with launch("--store", str(store), "--quiet", log_path=log_path) as (proc, base):
        gw = StripeGateway(make_settings(base))
        assert (
            gw.ensure_customer(email="x@example.com", name=None, user_id="u", existing_id=first)
            == first
        )
        second = new_customer(gw)
        stop(proc, signal.SIGTERM)
        assert proc.returncode == 0

    with launch("--store", str(store), "--quiet", log_path=log_path) as (_, base):
        gw = StripeGateway(make_settings(base))
        for customer in (first, second):
            assert (
                gw.ensure_customer(
                    email="x@example.com", name=None, user_id="u", existing_id=customer
                )
                == customer
            )

    # No temp files left next to the store, and the shared file was never touched.
    assert sorted(p.name for p in store.parent.iterdir()) == ["localstripe.pickle"]
    assert _fixed_pickle_state() == before


def test_launcher_survives_a_truncated_store(tmp_path: Path):
    before = _fixed_pickle_state()
    store = tmp_path / "localstripe.pickle"
    store.write_bytes(b"\x80\x05\x95garbage")  # a truncated pickle
    with launch("--store", str(store), "--quiet", log_path=tmp_path / "log") as (_, base):
        gw = StripeGateway(make_settings(base))
        gw.ping()
        assert new_customer(gw).startswith("cus_")
    assert [p for p in tmp_path.iterdir() if p.name.startswith("localstripe.pickle.corrupt-")]
    assert store.exists()  # rewritten with the new state
    assert _fixed_pickle_state() == before


def test_launcher_from_scratch_writes_nothing(tmp_path: Path):
    before = _fixed_pickle_state()
    with launch("--from-scratch", "--quiet", log_path=tmp_path / "log") as (_, base):
        new_customer(StripeGateway(make_settings(base)))
    assert _fixed_pickle_state() == before
    assert os.listdir(tmp_path) == ["log"]


def test_manual_capture_authorizes_then_captures_once(
    gateway: StripeGateway, raw: stripe.StripeClient
):
    customer = new_customer(gateway)
    pm = gateway.attach_payment_method(customer, new_pm(raw, CARD_OK))
    intent = gateway.create_intent(
        order_id="ord_manual",
        amount_cents=1800,
        currency="usd",
        customer_id=customer,
        payment_method_id=pm.id,
        capture_method="manual",
    )
    authorized = gateway.confirm_intent(intent.id)
    assert (authorized.status, authorized.capture_method) == ("requires_capture", "manual")
    assert (authorized.amount_capturable, authorized.amount_received) == (1800, 0)
    captured = gateway.capture_intent(intent.id)
    assert (captured.status, captured.amount_received) == ("succeeded", 1800)
    # A retried capture (lost answer) reports the captured intent.
    assert gateway.capture_intent(intent.id).status == "succeeded"
    # An authorization voided meanwhile cannot be captured: permanent.
    other = gateway.create_intent(
        order_id="ord_manual_void",
        amount_cents=900,
        currency="usd",
        customer_id=customer,
        payment_method_id=pm.id,
        capture_method="manual",
    )
    gateway.confirm_intent(other.id)
    assert gateway.cancel_intent(other.id).status == "canceled"
    with pytest.raises(PermanentError) as lost:
        gateway.capture_intent(other.id)
    assert lost.value.code == "authorization_lost"


def test_attach_refuses_another_customers_browser_made_method_without_moving_it(
    gateway: StripeGateway, raw: stripe.StripeClient
):
    from gateways.stripe_gateway import PaymentMethodNotOwned

    alice, bob = new_customer(gateway), new_customer(gateway)
    pm = new_pm(raw, CARD_OK)  # as Stripe.js makes it: no customer
    assert gateway.attach_payment_method(alice, pm).customer == alice
    assert gateway.attach_payment_method(alice, pm).customer == alice  # once, then as is
    with pytest.raises(PaymentMethodNotOwned):
        gateway.attach_payment_method(bob, pm)
    assert gateway.get_payment_method(pm).customer == alice


def test_csp_sources_for_stripe_and_for_an_emulator(api_base: str):
    from gateways.stripe_gateway import csp_sources

    live = csp_sources("https://api.stripe.com")
    assert live["script-src"] == ("https://js.stripe.com", "https://*.js.stripe.com")
    assert "https://hooks.stripe.com" in live["frame-src"]
    assert live["connect-src"] == ("https://api.stripe.com",)
    assert set(csp_sources(api_base).values()) == {(api_base,)}
