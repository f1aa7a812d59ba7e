"""Celery signals: JSON logs in every worker process, with the order's context bound."""

from __future__ import annotations

from typing import Any

import structlog
from celery.signals import setup_logging, task_postrun, task_prerun

from core.context import correlation_id_var
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
