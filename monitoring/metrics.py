"""Prometheus metrics shared by the API and the workers.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``make up`` and docker-compose set it for the API
and the workers), every process writes its samples there and the API's ``/metrics``
aggregates them, so worker-side step durations, retries and compensations show up too.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from core.db import get_db
from core.redis_client import get_redis
from core.settings import get_settings

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
        if not settings.effective_broker_url.startswith(("redis://", "rediss://")):
            return
        depth = GaugeMetricFamily("oms_queue_depth", "Messages waiting per queue", labels=["queue"])
        try:
            client = get_redis()
            for queue in ("orders", "payments", "events", "maintenance"):
                depth.add_metric([queue], client.llen(queue))
        except Exception:  # same: never fail the scrape
            return
        yield depth


_state = OrderStateCollector()
REGISTRY.register(_state)


def observe_http(method: str, route: str, status: int, seconds: float) -> None:
    HTTP_LATENCY.labels(method, route, str(status)).observe(seconds)


def render_latest() -> tuple[bytes, str]:
    path = get_settings().prometheus_multiproc_dir
    if not path:
        return generate_latest(), CONTENT_TYPE_LATEST
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=path)
    registry.register(_state)
    for collector in list(REGISTRY._collector_to_names):
        # Scrape-time collectors (outbox lag, dead letters) are not in the files.
        if collector is not _state and collector.__class__.__module__.startswith("monitoring."):
            registry.register(collector)
    return generate_latest(registry), CONTENT_TYPE_LATEST
