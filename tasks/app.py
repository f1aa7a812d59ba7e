"""The Celery app: broker, the non-optional settings, queues and routing."""

from __future__ import annotations

from celery import Celery
from celery.signals import worker_process_init
from kombu import Queue

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
        task_soft_time_limit=settings.task_soft_time_limit,
        task_time_limit=settings.task_time_limit,
        worker_send_task_events=True,
        task_send_sent_event=True,
        task_track_started=True,
        task_default_queue="orders",
        task_queues=[Queue(name) for name in QUEUES],
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
celery_app.conf.imports = ("tasks.system",)


@worker_process_init.connect
def _connect_after_fork(**_: object) -> None:
    # pymongo clients must not cross a fork: connect in each child.
    from core.db import connect_mongo
    from core.redis_client import reset_redis
    from monitoring.logging import configure_logging

    configure_logging(force=True)
    reset_redis()
    connect_mongo()
