"""The Celery app: broker, the non-optional settings, queues and routing."""

from __future__ import annotations

from celery import Celery
from celery.signals import beat_init, worker_init
from kombu import Exchange, Queue

import monitoring.celery_signals  # noqa: F401 - registers logging/context signals
import tasks.pools  # noqa: F401 - connects per-process clients for any pool
from core.redis_client import kombu_broker
from core.settings import get_settings
from tasks.pools import setup_process_tracing

# "webhooks" apart: a slow or dead receiver of ours never delays an order's own work.
QUEUES = ("orders", "payments", "events", "maintenance", "webhooks")
DEAD_LETTER_EXCHANGE = "oms.dead"


def is_amqp(url: str) -> bool:
    return url.startswith(("amqp://", "amqps://", "pyamqp://"))


def task_queues(broker_url: str, *, quorum: bool, delivery_limit: int) -> list[Queue]:
    """The four work queues; on RabbitMQ, quorum queues that dead-letter a message delivered
    ``delivery_limit`` times (a task that kills its worker every time) into ``<queue>.dead``.

    Quorum queues cannot delay a message, so Celery's retries with a countdown go through its
    native delayed delivery, which needs topic exchanges (a routing key equal to the queue
    name matches exactly as a direct exchange would).
    """
    if not (is_amqp(broker_url) and quorum):
        return [Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES]
    return [
        Queue(
            name,
            Exchange(name, type="topic"),
            routing_key=name,
            queue_arguments={
                "x-queue-type": "quorum",
                "x-delivery-limit": delivery_limit,
                "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
                "x-dead-letter-routing-key": f"{name}.dead",
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            },
        )
        for name in QUEUES
    ]


def dead_letter_queues() -> list[Queue]:
    """Where RabbitMQ puts messages past the delivery limit (kept, never consumed by a worker;
    an operator inspects them and re-publishes with the management UI or shovel)."""
    dlx = Exchange(DEAD_LETTER_EXCHANGE, type="direct", durable=True)
    return [
        Queue(
            f"{name}.dead",
            dlx,
            routing_key=f"{name}.dead",
            queue_arguments={"x-queue-type": "quorum"},
        )
        for name in QUEUES
    ]


def make_celery() -> Celery:
    settings = get_settings()
    # redis+sentinel:// becomes kombu's sentinel transport (core.redis_client.kombu_broker).
    broker, sentinel_options = kombu_broker(settings.effective_broker_url)
    app = Celery("oms", broker=broker)
    transport_options: dict = {
        "visibility_timeout": settings.broker_visibility_timeout,
        **sentinel_options,
    }
    if is_amqp(broker):
        # A publish returns only once RabbitMQ has the message (the API answers 503 if not).
        transport_options = {"confirm_publish": True}
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options=transport_options,
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
        task_queues=task_queues(
            broker,
            quorum=settings.broker_quorum_queues,
            delivery_limit=settings.broker_delivery_limit,
        ),
        task_routes={
            "orders.*": {"queue": "orders"},
            "payments.*": {"queue": "payments"},
            "events.*": {"queue": "events"},
            "maintenance.*": {"queue": "maintenance"},
            "webhooks.*": {"queue": "webhooks"},
            "mail.*": {"queue": "webhooks"},
        },
        # SIGTERM is Celery's warm shutdown: running tasks finish (bounded by their time
        # limit), unstarted ones go back to the broker. A second signal (or SIGQUIT) is the
        # soft shutdown: this long for running tasks, then they are handed back (acks late).
        # Orchestrators give a grace above the task time limit (compose, deploy/kubernetes).
        worker_soft_shutdown_timeout=float(settings.task_time_limit),
        worker_enable_soft_shutdown_on_idle=True,
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
    "tasks.outgoing_webhooks",
    "tasks.mail",
    "tasks.returns",
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
    "send-due-webhooks": {"task": "webhooks.send_due", "schedule": _s.beat_webhook_interval},
}


@worker_init.connect
def _declare_rabbitmq_topology(**_: object) -> None:
    """Declare every work queue and its dead-letter queue before the consumer starts.

    Celery's native delayed delivery binds *every* task queue to its delay exchanges, also
    those this worker does not consume (a worker started with ``-Q payments``), and fails
    for an exchange nobody declared yet; RabbitMQ drops a dead-lettered message when nothing
    is bound to the dead-letter exchange. Best effort: a broker still down is retried by
    the consumer's own connection loop, and the next worker start declares again.
    """
    settings = get_settings()
    if not (is_amqp(settings.effective_broker_url) and settings.broker_quorum_queues):
        return
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=3)
            channel = conn.default_channel
            for queue in [*celery_app.conf.task_queues, *dead_letter_queues()]:
                queue(channel).declare()
    except Exception as exc:  # logged; the worker goes on and its consumer retries
        import logging

        logging.getLogger(__name__).warning("could not declare RabbitMQ queues: %s", exc)


@beat_init.connect
def _beat_tracing(**_: object) -> None:
    setup_process_tracing("beat")
