"""A live scrape: the API's /metrics and a worker host's exporter, after real traffic.

The API (uvicorn) and a real worker subprocess each write to their own multiprocess
directory, as on two hosts; the worker serves its host's directory on
``WORKER_METRICS_PORT``. Both scrapes pass ``promtool check metrics``, carry the issue's
metrics with the values the traffic implies, and contain every metric the Grafana
dashboard and the alert rules in deploy/observability/ query.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devstack import processes
from tests.conftest import ARTIFACTS, Worker
from tests.factories import (
    CARD_DECLINED_AT_CONFIRM,
    admin_login,
    create_product,
    customer_with_card,
    place_order,
    register,
    saved_card,
    wait_status,
)
from tests.support.promtool import promtool

ROOT = Path(__file__).resolve().parents[2]
OBSERVABILITY = ROOT / "deploy" / "observability"


@pytest.fixture
def stack(paused_worker, tmp_path: Path) -> Iterator[dict[str, str]]:
    api_dir, worker_dir = tmp_path / "api-metrics", tmp_path / "worker-metrics"
    api_dir.mkdir()
    worker_dir.mkdir()
    port, worker_port = processes.free_port(), processes.free_port()
    base = f"http://127.0.0.1:{port}"
    api = processes.spawn(
        processes.api_args(port, "--no-access-log"),
        env={"PUBLIC_BASE_URL": base, "PROMETHEUS_MULTIPROC_DIR": str(api_dir)},
        log_path=ARTIFACTS / "metrics-api.log",
    )
    worker = None
    try:
        processes.wait_port(port, 30, api)
        worker = Worker(
            "worker-metrics",
            env={
                "PROMETHEUS_MULTIPROC_DIR": str(worker_dir),
                "WORKER_METRICS_PORT": str(worker_port),
            },
        ).start()
        processes.wait_port(worker_port, 20, worker.proc)
        yield {"api": base, "worker": f"http://127.0.0.1:{worker_port}/metrics"}
    finally:
        if worker is not None:
            worker.stop()
        processes.stop(api)


def _samples(text: str) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


def _value(samples: dict[str, list[Any]], name: str, **labels: str) -> float:
    return sum(
        s.value
        for s in samples.get(name, [])
        if all(s.labels.get(k) == v for k, v in labels.items())
    )


def queried_metrics() -> set[str]:
    """Every oms_* metric named in the dashboard's and the alert rules' expressions."""
    names: set[str] = set()
    for path in (OBSERVABILITY / "grafana-dashboard.json", OBSERVABILITY / "alerts.yml"):
        names |= set(re.findall(r"\boms_[a-z0-9_]+", path.read_text()))
    return names


def test_live_scrape_passes_promtool_and_has_every_metric(stack) -> None:
    import websockets.sync.client

    from tasks.app import celery_app

    with httpx.Client(base_url=stack["api"], timeout=10) as client:
        customer, pm = customer_with_card(client, "METRIC-1", stock=5)
        ok = place_order(client, customer["token"], [("METRIC-1", 1)], pm)
        assert ok.status_code == 202, ok.text
        other = register(client)
        bad_pm = saved_card(other["user"]["id"], CARD_DECLINED_AT_CONFIRM)
        declined = place_order(client, other["token"], [("METRIC-1", 1)], bad_pm)
        assert declined.status_code == 202, declined.text
        ok_id = ok.json()["data"]["order"]["id"]
        declined_id = declined.json()["data"]["order"]["id"]
        wait_status(client, customer["token"], ok_id, {"shipped", "delivered"})
        wait_status(client, other["token"], declined_id, {"failed"})
        # Beat's delivery job, run by the worker (DELIVERY_DELAY_SECONDS=0 in tests).
        celery_app.send_task("maintenance.reconcile", kwargs={"job": "deliveries"})
        wait_status(client, customer["token"], ok_id, {"delivered"})
        forged = client.post(
            "/api/payments/webhook",
            content=b'{"id": "evt_1", "type": "payment_intent.succeeded"}',
            headers={"stripe-signature": "t=1,v1=forged", "content-type": "application/json"},
        )
        assert forged.status_code == 400, forged.text
        admin = admin_login(client)
        create_product(client, admin["token"], "METRIC-2", stock=1)
        ws_url = stack["api"].replace("http://", "ws://") + "/ws"
        with websockets.sync.client.connect(ws_url):
            time.sleep(0.3)
            api_text = client.get("/metrics").text
        time.sleep(2.5)  # a worker heartbeat (every 2 s with events on) after the traffic
        worker_text = httpx.get(stack["worker"], timeout=10).text

    for name, text in (("api", api_text), ("worker", worker_text)):
        checked = promtool("check", "metrics", stdin=text)
        assert checked.returncode == 0, f"{name}: {checked.stdout}{checked.stderr}"

    api, worker = _samples(api_text), _samples(worker_text)
    # Scrape-time gauges on the API: queues, orders, the outbox, WebSockets.
    for queue in ("orders", "payments", "events", "maintenance"):
        assert [s for s in api["oms_queue_depth"] if s.labels["queue"] == queue]
        ages = api["oms_queue_oldest_message_age_seconds"]
        assert [s for s in ages if s.labels["queue"] == queue]
    assert _value(api, "oms_websocket_connections") == 1
    assert _value(api, "oms_webhook_signature_failures_total") == 1
    assert _value(api, "oms_orders_by_status", status="failed") == 1
    assert "oms_outbox_oldest_age_seconds" in api
    assert _value(api, "oms_orders_attention", reason="needs_attention") == 0
    # Worker-side: per task and queue, per order, payments, heartbeat.
    for task, queue in (
        ("orders.reserve_inventory", "orders"),
        ("payments.create_payment_intent", "payments"),
        ("payments.confirm_payment", "payments"),
        ("orders.ship_order", "orders"),
    ):
        assert _value(worker, "oms_celery_tasks_started_total", task=task, queue=queue) >= 1, task
        assert _value(worker, "oms_celery_tasks_succeeded_total", task=task, queue=queue) >= 1
    assert _value(worker, "oms_payments_total", outcome="succeeded") == 1
    declines = [s for s in worker["oms_payments_total"] if s.labels["outcome"] == "declined"]
    assert len(declines) == 1 and declines[0].value == 1 and declines[0].labels["decline_code"]
    for status in ("pending", "payment_pending", "confirmed"):
        assert _value(worker, "oms_order_status_duration_seconds_count", status=status) >= 1
    assert _value(worker, "oms_order_end_to_end_seconds_count") == 1
    assert _value(worker, "oms_worker_pool_processes") == 2  # the live children (-c 2)
    assert _value(worker, "oms_reconciliation_actions_total", job="deliveries") == 1
    assert _value(worker, "oms_celery_tasks_failed_total", task="orders.ship_order") == 0
    beat = _value(worker, "oms_worker_heartbeat_timestamp_seconds")
    assert time.time() - beat < 10, beat

    # Every metric the dashboard and the alerts query is in one of the two scrapes.
    present = set(api) | set(worker)
    present |= {f.name for f in text_string_to_metric_families(api_text + worker_text)}
    wanted = queried_metrics()
    assert wanted, "no metric found in deploy/observability/"
    missing = sorted(wanted - present)
    assert not missing, missing
