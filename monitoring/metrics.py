"""Prometheus metrics shared by the API and the workers."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

HTTP_LATENCY = Histogram(
    "oms_http_request_seconds",
    "HTTP request latency",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
ORDERS_BY_STATUS = Gauge("oms_orders_by_status", "Orders by status", ["status"])
STEP_SECONDS = Histogram("oms_step_seconds", "Order step duration", ["step", "outcome"])
STEP_RETRIES = Counter("oms_step_retries_total", "Order step retries", ["step"])
COMPENSATIONS = Counter("oms_compensations_total", "Compensations run", ["kind"])
RECONCILIATION_ACTIONS = Counter(
    "oms_reconciliation_actions_total", "Beat reconciliation actions", ["job", "action"]
)
WEBHOOK_DUPLICATES = Counter("oms_webhook_duplicates_total", "Duplicate Stripe webhooks ignored")
HEALTH_CHECK_OK = Gauge("oms_health_check_ok", "1 if the dependency check passed", ["check"])


def observe_http(method: str, route: str, status: int, seconds: float) -> None:
    HTTP_LATENCY.labels(method, route, str(status)).observe(seconds)


def render_latest() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST
