"""One order is one trace: the API (in-memory span exporter) and a real traced worker.

The API runs in this process with the SDK's ``InMemorySpanExporter``; the worker is a real
``celery worker`` subprocess whose pool children write their spans to a JSON lines file
(``OTEL_SPANS_FILE``, our ``JsonLinesSpanExporter``). The session worker is paused for the
test, so every task of the order runs in the traced worker.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Worker
from tests.factories import customer_with_card, intent_id_of, place_order, wait_status

CHAIN = (
    "orders.reserve_inventory",
    "payments.create_payment_intent",
    "payments.confirm_payment",
    "orders.ship_order",
)


@pytest.fixture
def traced(paused_worker, tmp_path: Path) -> Iterator[dict[str, Any]]:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from monitoring import tracing

    memory = InMemorySpanExporter()
    assert tracing.setup_tracing("api", exporter=memory)
    spans_file = tmp_path / "worker-spans.jsonl"
    state = {"memory": memory, "spans_file": spans_file, "worker": None}
    try:
        yield state
    finally:
        if state["worker"] is not None:
            state["worker"].stop()
        tracing.shutdown_tracing()


def _start_worker(state: dict[str, Any]) -> Worker:
    state["worker"] = Worker("worker-traced", env={"OTEL_SPANS_FILE": str(state["spans_file"])})
    return state["worker"].start()


def _api_spans(state: dict[str, Any]) -> list[dict[str, Any]]:
    from monitoring.tracing import span_record

    return [span_record(s) for s in state["memory"].get_finished_spans()]


def _worker_spans(state: dict[str, Any]) -> list[dict[str, Any]]:
    path: Path = state["spans_file"]
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _wait_for(state: dict[str, Any], trace_id: str, names: set[str], timeout: float = 20.0):
    """All spans of the trace, once every name in ``names`` has ended in the worker."""
    deadline = time.monotonic() + timeout
    while True:
        spans = [s for s in _worker_spans(state) if s["trace_id"] == trace_id]
        # A span is written when it ends, so a task still running (a mail or webhook
        # delivery the order's events queued) has children written before itself: wait
        # until every parent is known too.
        known = {s["span_id"] for s in spans} | {
            s["span_id"] for s in _api_spans(state) if s["trace_id"] == trace_id
        }
        complete = all(s["parent_span_id"] in known or not s["parent_span_id"] for s in spans)
        if (names <= {s["name"] for s in spans} and complete) or time.monotonic() > deadline:
            return spans
        time.sleep(0.2)


def _db(span: dict[str, Any]) -> str | None:
    attrs = span["attributes"]
    return attrs.get("db.system") or attrs.get("db.system.name")


def _client(app):
    from fastapi.testclient import TestClient

    return TestClient(app, raise_server_exceptions=False)


def _assert_one_tree(spans: list[dict[str, Any]], root: dict[str, Any]) -> None:
    """Every span's parent is in the set, and following parents always reaches ``root``."""
    by_id = {s["span_id"]: s for s in spans}
    for s in spans:
        hops, cur = 0, s
        while cur["span_id"] != root["span_id"]:
            assert cur["parent_span_id"] in by_id, f"{cur['name']}: parent not in the trace"
            cur = by_id[cur["parent_span_id"]]
            hops += 1
            assert hops < 200


def test_one_order_is_one_trace_across_api_worker_stripe_and_outbox(traced) -> None:
    from api.main import create_app
    from core.settings import get_settings

    with _client(create_app()) as client:
        customer, pm = customer_with_card(client, "TRACE-1")
        _start_worker(traced)
        cid = "trace-e2e-1"
        r = place_order(
            client, customer["token"], [("TRACE-1", 1)], pm, headers={"X-Correlation-ID": cid}
        )
        assert r.status_code == 202, r.text
        order_id = r.json()["data"]["order"]["id"]
        wait_status(client, customer["token"], order_id, {"shipped"})

    api = _api_spans(traced)
    posts = [s for s in api if s["name"] == "POST /api/orders" and s["kind"] == "SERVER"]
    assert len(posts) == 1, [s["name"] for s in api]
    root = posts[0]
    trace_id = root["trace_id"]
    assert root["parent_span_id"] is None
    assert root["attributes"]["oms.correlation_id"] == cid
    assert root["attributes"]["oms.order_id"] == order_id

    run_names = {f"run/{name}" for name in CHAIN}
    worker = _wait_for(traced, trace_id, run_names | {"outbox.dispatch"})
    spans = [s for s in api if s["trace_id"] == trace_id] + worker
    names = [s["name"] for s in spans]
    # The four chain tasks ran in the traced worker, each in the order's trace.
    for name in CHAIN:
        runs = [s for s in worker if s["name"] == f"run/{name}"]
        assert len(runs) == 1, (name, names)
        assert runs[0]["kind"] == "CONSUMER"
        assert runs[0]["attributes"]["oms.order_id"] == order_id
    # Each task was queued from inside the trace: the API sent the first, each step the next.
    for name in CHAIN:
        assert f"apply_async/{name}" in names, (name, names)
    # The Stripe calls (the SDK's requests client) against the emulator.
    stripe_base = get_settings().stripe_api_base
    stripe_calls = [
        s
        for s in worker
        if s["kind"] == "CLIENT"
        and str(s["attributes"].get("url.full") or s["attributes"].get("http.url", "")).startswith(
            stripe_base
        )
    ]
    paths = {
        str(s["attributes"].get("url.full") or s["attributes"].get("http.url"))
        .removeprefix(stripe_base)
        .split("?")[0]
        for s in stripe_calls
    }
    assert "/v1/payment_intents" in paths, paths
    assert any(p.endswith("/confirm") for p in paths), paths
    # The outbox dispatch, and Mongo and Redis calls, in the same trace.
    assert "outbox.dispatch" in names
    assert any(_db(s) == "mongodb" for s in worker), names
    assert any(_db(s) == "redis" for s in worker), names
    # One tree: every span hangs (through its parents) off the POST /api/orders span.
    _assert_one_tree(spans, root)
    # The correlation id is on every span of the order's trace.
    missing = [s["name"] for s in spans if s["attributes"].get("oms.correlation_id") != cid]
    assert not missing, missing

    # The worker's log lines for this order carry the trace id.
    lines = [json.loads(x) for x in traced["worker"].log().splitlines() if x.startswith("{")]
    mine = [x for x in lines if x.get("correlation_id") == cid]
    assert mine, "no worker log line for the order"
    assert all(x.get("trace_id") == trace_id for x in mine), [
        (x.get("event"), x.get("trace_id")) for x in mine if x.get("trace_id") != trace_id
    ]


def test_the_sweep_that_resumes_an_order_joins_its_trace(traced) -> None:
    from api.main import create_app
    from models.order import Order, now_utc
    from monitoring import tracing
    from tasks.app import celery_app
    from tasks.reconcile import reconcile_stuck_orders

    with _client(create_app()) as client:
        customer, pm = customer_with_card(client, "TRACE-2")
        r = place_order(
            client, customer["token"], [("TRACE-2", 1)], pm, headers={"X-Correlation-ID": "tr-2"}
        )
        assert r.status_code == 202, r.text
        order_id = r.json()["data"]["order"]["id"]
        # The chain's message is lost (nobody consumed it yet) and the order goes idle.
        celery_app.control.purge()
        Order._get_collection().update_one(
            {"_id": Order.get(order_id).id},
            {"$set": {"updated_at": now_utc() - timedelta(hours=2)}},
        )
        with tracing.span("sweep", job="stuck_orders"):
            counts = reconcile_stuck_orders()
        assert counts["resumed"] == 1, counts
        _start_worker(traced)
        wait_status(client, customer["token"], order_id, {"shipped"})

    api = _api_spans(traced)
    root = next(s for s in api if s["name"] == "POST /api/orders")
    sweep = next(s for s in api if s["name"] == "sweep")
    resume = next(s for s in api if s["name"] == "order.resume")
    assert sweep["trace_id"] != root["trace_id"]
    # The resume is in the order's trace, and linked to the sweep's.
    assert resume["trace_id"] == root["trace_id"]
    assert resume["parent_span_id"] == root["span_id"]
    assert {"trace_id": sweep["trace_id"]} in resume["links"]
    assert resume["attributes"]["oms.actor"] == "beat:stuck_orders"
    worker = _wait_for(traced, root["trace_id"], {f"run/{name}" for name in CHAIN})
    assert {f"run/{name}" for name in CHAIN} <= {s["name"] for s in worker}


def test_admin_list_links_each_order_to_its_trace(traced) -> None:
    from api.main import create_app
    from core.settings import get_settings
    from tests.factories import admin_login, auth

    template = "http://127.0.0.1:16686/trace/{trace_id}"
    settings = get_settings().model_copy(update={"tracing_ui_url": template})
    with _client(create_app(settings)) as client:
        customer, pm = customer_with_card(client, "TRACE-3")
        r = place_order(client, customer["token"], [("TRACE-3", 1)], pm)
        assert r.status_code == 202, r.text
        order_id = r.json()["data"]["order"]["id"]
        admin = admin_login(client)
        rows = client.get("/api/orders", headers=auth(admin["token"])).json()["data"]["orders"]
        mine = client.get("/api/orders/my-orders", headers=auth(customer["token"])).json()
    root = next(s for s in _api_spans(traced) if s["name"] == "POST /api/orders")
    row = next(x for x in rows if x["id"] == order_id)
    assert row["traceId"] == root["trace_id"]
    assert row["traceUrl"] == f"http://127.0.0.1:16686/trace/{root['trace_id']}"
    # Customers' views carry no tracing internals.
    assert all("traceId" not in x and "traceUrl" not in x for x in mine["data"]["orders"])


def test_admin_list_has_no_trace_link_without_a_tracing_ui(client, worker) -> None:
    from tests.factories import admin_login, auth

    customer, pm = customer_with_card(client, "TRACE-4")
    assert place_order(client, customer["token"], [("TRACE-4", 1)], pm).status_code == 202
    admin = admin_login(client)
    rows = client.get("/api/orders", headers=auth(admin["token"])).json()["data"]["orders"]
    assert rows and all(x["traceUrl"] is None for x in rows)
    assert all(x["traceId"] is None for x in rows)  # tracing off: nothing stored


def test_a_stripe_webhook_and_a_later_card_join_the_orders_trace(traced) -> None:
    from api.main import create_app
    from core.settings import get_settings
    from tests.factories import auth
    from tests.integration.test_stripe_gateway import sign

    with _client(create_app()) as client:
        customer, pm = customer_with_card(client, "TRACE-5")
        _start_worker(traced)
        # No card given: the chain stops in payment_pending, the intent waiting for one.
        r = place_order(client, customer["token"], [("TRACE-5", 1)])
        assert r.status_code == 202, r.text
        order_id = r.json()["data"]["order"]["id"]
        order = wait_status(client, customer["token"], order_id, {"payment_pending"})
        body = json.dumps(
            {
                "id": "evt_trace_1",
                "object": "event",
                "type": "payment_intent.succeeded",
                "data": {
                    "object": {
                        "id": intent_id_of(order["id"]),
                        "object": "payment_intent",
                        "metadata": {"order_id": order_id},
                    }
                },
            }
        ).encode()
        hook = client.post(
            "/api/payments/webhook",
            content=body,
            headers={"Stripe-Signature": sign(body, secret=get_settings().stripe_webhook_secret)},
        )
        assert hook.status_code == 200 and hook.json()["data"]["orderId"] == order_id, hook.text
        # The customer then gives the card: the rest of the chain joins the order's trace too.
        paid = client.post(
            "/api/payments/confirm",
            json={"orderId": order_id, "paymentMethodId": pm},
            headers=auth(customer["token"]),
        )
        assert paid.status_code == 202, paid.text
        wait_status(client, customer["token"], order_id, {"shipped"})

    api = _api_spans(traced)
    root = next(s for s in api if s["name"] == "POST /api/orders")
    request = next(s for s in api if s["name"] == "POST /api/payments/webhook")
    joined = next(s for s in api if s["name"] == "stripe.webhook")
    assert request["trace_id"] != root["trace_id"]
    assert joined["trace_id"] == root["trace_id"] and joined["parent_span_id"] == root["span_id"]
    assert {"trace_id": request["trace_id"]} in joined["links"]
    assert joined["attributes"]["oms.stripe_event"] == "payment_intent.succeeded"
    # The task the webhook queued runs in the order's trace, under the webhook's span.
    worker = _wait_for(traced, root["trace_id"], {"run/payments.sync_intent"})
    sync = next(s for s in worker if s["name"] == "run/payments.sync_intent")
    assert sync["attributes"]["oms.order_id"] == order_id
    confirm = next(s for s in api if s["name"] == "order.payment_confirm")
    assert confirm["trace_id"] == root["trace_id"] and confirm["parent_span_id"] == root["span_id"]
    worker = _wait_for(
        traced, root["trace_id"], {"run/payments.sync_intent", "run/orders.ship_order"}
    )
    assert "run/orders.ship_order" in {s["name"] for s in worker}
    _assert_one_tree([s for s in api if s["trace_id"] == root["trace_id"]] + worker, root)
