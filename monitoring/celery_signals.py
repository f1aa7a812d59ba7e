"""Celery signals: JSON logs in every worker process, with the order's context bound."""

from __future__ import annotations

import os
import time
from typing import Any

import structlog
from celery.signals import (
    before_task_publish,
    heartbeat_sent,
    setup_logging,
    task_failure,
    task_postrun,
    task_prerun,
    task_retry,
    task_success,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
)

from core.context import correlation_id_var
from monitoring import metrics
from monitoring.logging import configure_logging

CORRELATION_HEADER = "oms_correlation_id"


@setup_logging.connect
def _use_our_logging(**_: Any) -> None:
    # Connecting here stops Celery from installing its own plain-text handlers.
    configure_logging(force=True)


def _correlation_from(task: Any, kwargs: dict[str, Any]) -> str | None:
    request = getattr(task, "request", None)
    headers = getattr(request, "headers", None) or {}
    return (
        getattr(request, CORRELATION_HEADER, None)
        or headers.get(CORRELATION_HEADER)
        or kwargs.get("correlation_id")
        or kwargs.get("order_id")
    )


@task_prerun.connect
def _bind_task_context(
    task_id: str, task: Any, kwargs: dict[str, Any] | None = None, **_: Any
) -> None:
    kwargs = kwargs or {}
    cid = _correlation_from(task, kwargs)
    correlation_id_var.set(cid)
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(
        correlation_id=cid,
        order_id=kwargs.get("order_id"),
        task_id=task_id,
        task_name=task.name,
    )


@task_postrun.connect
def _unbind_task_context(**_: Any) -> None:
    structlog.contextvars.clear_contextvars()
    correlation_id_var.set(None)


# -- metrics (issue 19): per task and queue, the age of queued messages, worker liveness --


def _queue_of(task: Any) -> str:
    info = getattr(getattr(task, "request", None), "delivery_info", None) or {}
    return str(info.get("routing_key") or info.get("exchange") or "unknown")


@before_task_publish.connect
def _stamp_sent_at(headers: dict[str, Any] | None = None, **_: Any) -> None:
    # The queue-age gauge reads this off the oldest waiting message.
    if headers is not None:
        headers.setdefault(metrics.SENT_AT_HEADER, time.time())


@task_prerun.connect
def _count_started(task: Any = None, **_: Any) -> None:
    if task is not None:
        metrics.TASKS_STARTED.labels(_queue_of(task), task.name).inc()


@task_success.connect
def _count_succeeded(sender: Any = None, **_: Any) -> None:
    if sender is not None:
        metrics.TASKS_SUCCEEDED.labels(_queue_of(sender), sender.name).inc()


@task_failure.connect
def _count_failed(sender: Any = None, **_: Any) -> None:
    if sender is not None:
        metrics.TASKS_FAILED.labels(_queue_of(sender), sender.name).inc()


@task_retry.connect
def _count_retried(sender: Any = None, **_: Any) -> None:
    if sender is not None:
        metrics.TASKS_RETRIED.labels(_queue_of(sender), sender.name).inc()


@heartbeat_sent.connect
def _heartbeat(**_: Any) -> None:
    metrics.WORKER_HEARTBEAT.set(time.time())


@worker_process_init.connect
def _pool_process_up(**_: Any) -> None:
    metrics.WORKER_POOL_PROCESSES.set(1)


@worker_process_shutdown.connect
def _pool_process_down(**_: Any) -> None:
    metrics.mark_process_dead(os.getpid())


def _route_queue(app: Any, name: str) -> str:
    try:
        queue = app.amqp.router.route({}, name).get("queue")
        return str(getattr(queue, "name", queue) or name.split(".", 1)[0])
    except Exception:  # our routes are "<queue>.*"
        return name.split(".", 1)[0]


@worker_ready.connect
def _start_exporter(sender: Any = None, **_: Any) -> None:
    # Every task's counters exist from the start (at 0), so rates and alerts see them.
    app = getattr(sender, "app", None)
    for name in sorted(getattr(app, "tasks", None) or ()):
        if name.startswith("celery."):
            continue
        queue = _route_queue(app, name)
        for counter in (
            metrics.TASKS_STARTED,
            metrics.TASKS_SUCCEEDED,
            metrics.TASKS_FAILED,
            metrics.TASKS_RETRIED,
        ):
            counter.labels(queue, name)
    metrics.WORKER_HEARTBEAT.set(time.time())
    metrics.start_worker_exporter()
