"""Prometheus metrics shared by the API and the workers.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``make up`` and docker-compose set it for the API
and the workers), every process writes its samples there and the API's ``/metrics``
aggregates them, so worker-side step durations, retries and compensations show up too.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import timedelta

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from core.db import get_db
from core.redis_client import get_redis
from core.settings import get_settings
from models.order import add_transition_observer, now_utc
from workflows.states import FINISHED, PAYABLE, OrderStatus

# Broker queues (tasks.app.QUEUES; monitoring sits below tasks) and our publish header.
QUEUE_NAMES = ("orders", "payments", "events", "maintenance", "webhooks")
SENT_AT_HEADER = "oms_sent_at"

HTTP_LATENCY = Histogram(
    "oms_http_request_seconds",
    "HTTP request latency",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
STEP_SECONDS = Histogram("oms_step_seconds", "Order step duration", ["step", "outcome"])
ORDER_E2E_SECONDS = Histogram(
    "oms_order_end_to_end_seconds",
    "From order accepted to shipped",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800),
)
STEP_RETRIES = Counter("oms_step_retries_total", "Order step retries", ["step"])
COMPENSATIONS = Counter("oms_compensations_total", "Compensations run", ["kind"])
RECONCILIATION_ACTIONS = Counter(
    "oms_reconciliation_actions_total", "Beat reconciliation actions", ["job", "action"]
)
OUTGOING_WEBHOOK_ATTEMPTS = Counter(
    "oms_outgoing_webhook_attempts_total",
    "Outgoing webhook delivery attempts by outcome (succeeded, retrying, failed, refused)",
    ["outcome"],
)
WEBHOOK_DUPLICATES = Counter("oms_webhook_duplicates_total", "Duplicate Stripe webhooks ignored")
# Payments changed in Stripe itself (issue 14): Dashboard refunds, disputes by event/status,
# money returned automatically for orders that did not ship.
STRIPE_REFUNDS_RECORDED = Counter(
    "oms_stripe_refunds_recorded_total", "Refunds recorded on orders", ["source"]
)
DISPUTES = Counter("oms_disputes_total", "Dispute events recorded", ["event", "status"])
AUTO_REFUNDS = Counter("oms_auto_refunds_total", "Payments of unshipped orders refunded", ["via"])
HEALTH_CHECK_OK = Gauge(
    "oms_health_check_ok", "1 if the dependency check passed", ["check"], multiprocess_mode="max"
)

# -- issue 19: per task and queue, per order, payments, webhooks, WebSockets, heartbeats --
TASKS_STARTED = Counter("oms_celery_tasks_started_total", "Celery tasks started", ["queue", "task"])
TASKS_SUCCEEDED = Counter(
    "oms_celery_tasks_succeeded_total", "Celery tasks that returned", ["queue", "task"]
)
TASKS_FAILED = Counter(
    "oms_celery_tasks_failed_total", "Celery tasks that raised for good", ["queue", "task"]
)
TASKS_RETRIED = Counter(
    "oms_celery_tasks_retried_total", "Celery task retries scheduled", ["queue", "task"]
)
ORDER_STATUS_SECONDS = Histogram(
    "oms_order_status_duration_seconds",
    "Time an order spent in a status, observed when it leaves that status",
    ["status"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800, 3600, 86400),
)
ORDER_TRANSITIONS = Counter("oms_order_transitions_total", "Orders moved into a status", ["to"])
PAYMENTS = Counter(
    "oms_payments_total",
    "Payment outcomes (succeeded, requires_action, declined, failed) by decline code",
    ["outcome", "decline_code"],
)
WEBHOOK_SIGNATURE_FAILURES = Counter(
    "oms_webhook_signature_failures_total", "Stripe webhooks refused: bad or missing signature"
)
WEBSOCKET_CONNECTIONS = Gauge(
    "oms_websocket_connections",
    "Open WebSocket connections",
    multiprocess_mode="livesum",  # a dead API process's sockets are gone with it
)
WORKER_HEARTBEAT = Gauge(
    "oms_worker_heartbeat_timestamp_seconds",
    "Unix time of the newest Celery worker heartbeat",
    multiprocess_mode="max",  # a dead worker's last beat stays: it is when it was last seen
)
WORKER_POOL_PROCESSES = Gauge(
    "oms_worker_pool_processes",
    "Live Celery pool processes",
    multiprocess_mode="livesum",
)


class OrderStateCollector(Collector):
    """Orders by status and broker queue depth, read from Mongo/Redis at scrape time."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        by_status = GaugeMetricFamily("oms_orders_by_status", "Orders by status", labels=["status"])
        try:
            rows = get_db()["orders"].aggregate([{"$group": {"_id": "$status", "n": {"$sum": 1}}}])
            for row in rows:
                by_status.add_metric([str(row["_id"])], row["n"])
        except Exception:  # a scrape must not fail because Mongo is down; /health says that
            return
        yield by_status
        disputed = GaugeMetricFamily(
            "oms_orders_disputed", "Orders by their latest dispute's status", labels=["status"]
        )
        try:
            rows = get_db()["orders"].aggregate(
                [
                    {"$match": {"dispute_status": {"$type": "string"}}},
                    {"$group": {"_id": "$dispute_status", "n": {"$sum": 1}}},
                ]
            )
            for row in rows:
                disputed.add_metric([str(row["_id"])], row["n"])
        except Exception:  # never fail the scrape
            return
        yield disputed
        settings = get_settings()
        try:
            attention = _attention_and_stuck(settings)
        except Exception:  # same: never fail the scrape
            return
        yield attention
        if not settings.effective_broker_url.startswith(("redis://", "rediss://")):
            return
        depth = GaugeMetricFamily("oms_queue_depth", "Messages waiting per queue", labels=["queue"])
        try:
            client = get_redis()
            for queue in QUEUE_NAMES:
                depth.add_metric([queue], client.llen(queue))
            ages = _queue_ages(client)
        except Exception:  # same: never fail the scrape
            return
        yield depth
        yield ages


def _queue_ages(client) -> GaugeMetricFamily:
    """Age of the oldest waiting message per queue, from the header our publishes carry.

    Kombu's Redis transport LPUSHes and BRPOPs, so the oldest message is the list's tail.
    0 for an empty queue (or a message without the header, sent by an older release).
    """
    ages = GaugeMetricFamily(
        "oms_queue_oldest_message_age_seconds",
        "Seconds the oldest waiting message of each queue has waited",
        labels=["queue"],
    )
    now = time.time()
    for queue in QUEUE_NAMES:
        age = 0.0
        raw = client.lindex(queue, -1)
        if raw:
            try:
                sent = float(json.loads(raw).get("headers", {}).get(SENT_AT_HEADER) or 0)
            except (ValueError, TypeError, AttributeError):
                sent = 0.0
            age = max(0.0, now - sent) if sent else 0.0
        ages.add_metric([queue], age)
    return ages


def _attention_and_stuck(settings) -> GaugeMetricFamily:
    """Orders flagged for an operator, and unfinished orders idle past the stuck threshold."""
    family = GaugeMetricFamily(
        "oms_orders_attention", "Orders an operator should look at", labels=["reason"]
    )
    orders = get_db()["orders"]
    family.add_metric(["needs_attention"], orders.count_documents({"needs_attention": True}))
    # What the stuck-order sweep takes (tasks.reconcile): unfinished, idle past the
    # threshold, and not waiting on the customer.
    idle_since = now_utc() - timedelta(seconds=settings.stuck_order_seconds)
    stuck = orders.count_documents(
        {
            "status": {"$nin": [s.value for s in FINISHED]},
            "updated_at": {"$lte": idle_since},
            "$nor": [
                {"status": OrderStatus.REQUIRES_ACTION.value},
                {"status": OrderStatus.PAYMENT_PENDING.value, "payment_method_id": None},
            ],
        }
    )
    family.add_metric(["stuck"], stuck)
    return family


_DECLINE = re.compile(r"payment declined: ([a-z_]{1,40})")


def _observe_transition(frm: OrderStatus, to: OrderStatus, seconds: float, reason: str) -> None:
    """Called by Order.transition after each compare-and-set that moved an order."""
    ORDER_STATUS_SECONDS.labels(frm.value).observe(max(0.0, seconds))
    ORDER_TRANSITIONS.labels(to.value).inc()
    if to == OrderStatus.CONFIRMED and frm in PAYABLE:
        PAYMENTS.labels("succeeded", "").inc()
    elif to == OrderStatus.REQUIRES_ACTION:
        PAYMENTS.labels("requires_action", "").inc()
    elif to == OrderStatus.FAILED and frm in PAYABLE:
        match = _DECLINE.match(reason or "")
        if match:
            PAYMENTS.labels("declined", match.group(1)).inc()
        else:
            PAYMENTS.labels("failed", "").inc()


add_transition_observer(_observe_transition)
_state = OrderStateCollector()
REGISTRY.register(_state)


def observe_http(method: str, route: str, status: int, seconds: float) -> None:
    HTTP_LATENCY.labels(method, route, str(status)).observe(seconds)


def render_latest() -> tuple[bytes, str]:
    path = get_settings().prometheus_multiproc_dir
    if not path:
        return generate_latest(), CONTENT_TYPE_LATEST
    registry = multiprocess_registry(path)
    registry.register(_state)
    for collector in list(REGISTRY._collector_to_names):
        # Scrape-time collectors (outbox lag, dead letters) are not in the files.
        if collector is not _state and collector.__class__.__module__.startswith("monitoring."):
            registry.register(collector)
    return generate_latest(registry), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    """Drop a finished process's live gauges from the multiprocess directory."""
    path = get_settings().prometheus_multiproc_dir
    if path:
        multiprocess.mark_process_dead(pid, path)


def multiprocess_registry(path: str) -> CollectorRegistry:
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=path)
    return registry


def start_worker_exporter() -> int | None:
    """The per-host worker exporter: this host's multiprocess directory over HTTP.

    Started in the worker's main process when ``WORKER_METRICS_PORT`` is set. It serves
    every process writing to ``PROMETHEUS_MULTIPROC_DIR`` on this host (the worker and its
    pool children), so each worker host is one scrape target. Returns the port, or None.
    """
    settings = get_settings()
    if not settings.worker_metrics_port:
        return None
    path = settings.prometheus_multiproc_dir
    if not path:
        raise RuntimeError("WORKER_METRICS_PORT needs PROMETHEUS_MULTIPROC_DIR (one per host)")
    start_http_server(
        settings.worker_metrics_port,
        addr=settings.worker_metrics_host,
        registry=multiprocess_registry(path),
    )
    return settings.worker_metrics_port
