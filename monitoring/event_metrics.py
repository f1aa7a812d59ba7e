"""Prometheus gauges of the event pipeline (outbox lag, dead letters), read at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from core.db import get_db
from models.dead_letter import DeadLetter
from models.outbox import outbox_lag


class EventPipelineCollector(Collector):
    """Computed from Mongo on each scrape, so every API process reports the same truth."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            lag = outbox_lag(get_db())
            dead = DeadLetter.unresolved_count()
        except Exception:  # a scrape must not fail because Mongo is down; /health says that
            return
        pending = GaugeMetricFamily(
            "oms_outbox_pending_events", "Events waiting in outboxes", labels=["kind"]
        )
        for kind, count in lag["byKind"].items():
            pending.add_metric([kind], count)
        yield pending
        yield GaugeMetricFamily(
            "oms_outbox_oldest_age_seconds",
            "Age of the oldest event not yet dispatched",
            value=lag["oldestAgeSeconds"],
        )
        yield GaugeMetricFamily(
            "oms_dead_letters_unresolved", "Dead letters waiting for an operator", value=dead
        )


_installed: list[EventPipelineCollector] = []


def install_event_metrics() -> None:
    """Register the collector once per process."""
    if not _installed:
        collector = EventPipelineCollector()
        REGISTRY.register(collector)
        _installed.append(collector)
