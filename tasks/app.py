"""The Celery app: broker, the non-optional settings, queues and routing."""

from __future__ import annotations

from celery import Celery
from kombu import Exchange, Queue

import monitoring.celery_signals  # noqa: F401 - registers logging/context signals
import tasks.pools  # noqa: F401 - connects per-process clients for any pool
from core.settings import get_settings

QUEUES = ("orders", "payments", "events", "maintenance")


def make_celery() -> Celery:
    settings = get_settings()
    app = Celery("oms", broker=settings.effective_broker_url)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options={"visibility_timeout": settings.broker_visibility_timeout},
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2.0,
        # Publishing must fail fast (the API answers 503) rather than hang on a dead broker.
        task_publish_retry=True,
        task_publish_retry_policy={
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": 0.3,
            "interval_max": 0.5,
        },
        task_soft_time_limit=settings.task_soft_time_limit,
        task_time_limit=settings.task_time_limit,
        worker_send_task_events=True,
        task_send_sent_event=True,
        task_track_started=True,
        task_default_queue="orders",
        task_queues=[
            Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES
        ],
        task_routes={
            "orders.*": {"queue": "orders"},
            "payments.*": {"queue": "payments"},
            "events.*": {"queue": "events"},
            "maintenance.*": {"queue": "maintenance"},
        },
        worker_hijack_root_logger=False,
        enable_utc=True,
        timezone="UTC",
    )
    return app


celery_app = make_celery()
# Task modules register themselves on import; the worker imports this list.
celery_app.conf.imports = (
    "tasks.system",
    "tasks.order_steps",
    "tasks.payment_steps",
    "tasks.events",
    "tasks.reconcile",
)
# Beat's jobs: each one idempotent and guarded by its own Redis lock.
_s = get_settings()
celery_app.conf.beat_schedule = {
    **{
        f"reconcile-{job}": {
            "task": "maintenance.reconcile",
            "schedule": _s.beat_reconcile_interval,
            "kwargs": {"job": job},
        }
        for job in (
            "stuck_orders",
            "payments",
            "leaked_holds",
            "orphan_intents",
            "deliveries",
            "idempotency_keys",
        )
    },
    "health-check": {"task": "maintenance.health_check", "schedule": _s.beat_health_interval},
    "sweep-outboxes": {
        "task": "events.sweep_outboxes",
        "schedule": get_settings().beat_outbox_interval,
    },
}
