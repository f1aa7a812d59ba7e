"""The base of every order step and compensation: retries, context, failure handling."""

from __future__ import annotations

import structlog
from celery import Task
from kombu.exceptions import OperationalError as BrokerError
from pymongo.errors import AutoReconnect, ConnectionFailure, ServerSelectionTimeoutError
from redis.exceptions import ConnectionError as RedisConnectionError

from core.settings import get_settings
from models.order import Order
from monitoring.metrics import STEP_RETRIES
from tasks.events import flush_outbox
from workflows.errors import TransientError
from workflows.events import EventType

log = structlog.get_logger(__name__)
_settings = get_settings()

RETRYABLE = (
    TransientError,
    AutoReconnect,
    ConnectionFailure,
    ServerSelectionTimeoutError,
    RedisConnectionError,
)


class OrderTask(Task):
    """Retries transient errors with capped exponential backoff and full jitter.

    When retries run out (or an unexpected error escapes), the order is flagged
    ``needs_attention`` so an operator sees it; nothing fails silently.
    """

    abstract = True
    acks_late = True
    autoretry_for = RETRYABLE
    retry_backoff = 1
    retry_backoff_max = _settings.retry_backoff_cap
    retry_jitter = True
    max_retries = _settings.retry_max

    def on_retry(self, exc: BaseException, task_id: str, args: tuple, kwargs: dict, einfo) -> None:
        STEP_RETRIES.labels(self.name).inc()
        order_id = kwargs.get("order_id")
        log.warning("step_retrying", error=str(exc)[:200], retries=self.request.retries)
        if not order_id:
            return
        try:
            Order.push_events(
                order_id,
                (EventType.ORDER_STEP_RETRYING,),
                {"step": self.name, "error": str(exc)[:200], "attempt": self.request.retries + 1},
            )
        except RETRYABLE as down:
            # The retry is already queued; recording it needs the database that is down.
            # Raising here would turn the retry into a failure (and an operator's flag).
            log.warning("step_retry_not_recorded", error=f"{type(down).__name__}: {down}"[:200])
            return
        flush_outbox("orders", order_id)

    def on_failure(
        self, exc: BaseException, task_id: str, args: tuple, kwargs: dict, einfo
    ) -> None:
        order_id = kwargs.get("order_id")
        if isinstance(exc, BrokerError):
            # The broker refused a publish (most often the chain's next step, after the
            # step's own work was done): Mongo holds the truth, and the stuck-order sweep
            # resumes the order once the broker is back (flagging it only after repeated
            # resumes fail). Not an operator's problem yet.
            log.warning("step_publish_failed", error=f"{type(exc).__name__}: {exc}"[:300])
            return
        log.error("step_failed", error=f"{type(exc).__name__}: {exc}"[:300])
        if order_id and Order.flag_attention(
            order_id, f"{self.name} failed: {type(exc).__name__}: {exc}"[:300], f"task:{self.name}"
        ):
            flush_outbox("orders", order_id)


def stop_chain(task: Task) -> None:
    """End the chain here without an error (Flower shows SUCCESS, no later step runs)."""
    task.request.chain = None
    task.request.callbacks = None
