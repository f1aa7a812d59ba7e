"""Outbox dispatch, the outbox sweep, retried handler runs, dead letters and replay.

``dispatch_outbox(kind, aggregate_id)``, under a per-aggregate Redis lock (so one
aggregate's events are stored and published in outbox order): read the outbox, store the
events (one batch, duplicates ignored), publish them on ``oms:events``, send one
``events.run_handler`` task per interested handler, then ``$pull`` exactly those event ids.
A crash anywhere before the pull means the next dispatch (or the sweep) does it again:
at-least-once, and every consumer dedupes by ``eventId``.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from contextlib import suppress
from datetime import timedelta
from typing import Any

import structlog
from bson import ObjectId
from bson.errors import InvalidId
from celery import Task
from celery.signals import worker_ready, worker_shutdown
from pymongo.errors import AutoReconnect, ConnectionFailure
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import LockError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core.bus import publish_events
from core.db import get_db
from core.redis_client import get_redis
from core.settings import get_settings
from models.dead_letter import DeadLetter, handler_key
from models.event import (
    EventFilter,
    announce,
    bus_message,
    get_event,
    iter_matching,
    now_utc,
    public_event,
    store_events,
)
from models.outbox import OUTBOX_KINDS, ensure_outbox_indexes
from tasks.app import celery_app
from tasks.handlers import get_handler, handlers_for, load_plugins
from workflows.events import EventType

log = structlog.get_logger(__name__)
load_plugins()

RUN_HANDLER = "events.run_handler"
CORRELATION_HEADER = "oms_correlation_id"
FAILURES_KEY = "oms:events:handler_failures"
LOCK_TTL_S = 30  # longer than any dispatch; a crashed holder frees the aggregate after this
RETRYABLE = (AutoReconnect, ConnectionFailure, RedisConnectionError, RedisTimeoutError)


def retry_countdown(retries: int, cap: float) -> float:
    """Exponential backoff with equal jitter: half fixed, half random, so delays keep growing."""
    backoff = min(float(cap), 2.0**retries)
    return backoff / 2 + random.uniform(0, backoff / 2)


def _aggregate_key(kind: str, aggregate_id: str) -> Any:
    if kind in ("orders", "users"):
        with suppress(InvalidId, TypeError):
            return ObjectId(aggregate_id)
    return aggregate_id


def fan_out(docs: Iterable[dict[str, Any]]) -> int:
    """Send one handler-run task per (interested handler, event); returns how many."""
    sent = 0
    with celery_app.producer_or_acquire() as producer:
        for doc in docs:
            for spec in handlers_for(str(doc.get("type"))):
                celery_app.send_task(
                    RUN_HANDLER,
                    kwargs={"handler": spec.name, "event_id": doc["_id"]},
                    headers={CORRELATION_HEADER: doc.get("correlationId")},
                    producer=producer,
                )
                sent += 1
    return sent


def dispatch_aggregate(kind: str, aggregate_id: str, *, wait_s: float = 5.0) -> int | None:
    """Move one aggregate's outbox to the store, the bus and the handlers.

    Returns how many events were dispatched, or None when another dispatcher holds the
    aggregate for longer than ``wait_s`` (it will take whatever is pending).
    """
    if kind not in OUTBOX_KINDS:
        raise ValueError(f"unknown outbox kind {kind!r}")
    lock = get_redis().lock(
        f"oms:outbox-lock:{kind}:{aggregate_id}", timeout=LOCK_TTL_S, blocking_timeout=wait_s
    )
    if not lock.acquire():
        return None
    try:
        coll = get_db()[kind]
        key = _aggregate_key(kind, aggregate_id)
        doc = coll.find_one({"_id": key}, {"outbox": 1})
        outbox = [e for e in (doc or {}).get("outbox") or [] if e.get("eventId")]
        if not outbox:
            return 0
        # Log under the events' own correlation id (a sweep has none of its own).
        structlog.contextvars.bind_contextvars(correlation_id=outbox[0].get("correlationId"))
        stored = store_events(outbox)
        publish_events(bus_message(d) for d in stored)
        fan_out(stored)
        ids = [e["eventId"] for e in outbox]
        # Only what was dispatched: events pushed meanwhile stay for the next run.
        coll.update_one({"_id": key}, {"$pull": {"outbox": {"eventId": {"$in": ids}}}})
        log.info("outbox_dispatched", kind=kind, aggregate_id=aggregate_id, events=len(ids))
        return len(ids)
    finally:
        with suppress(LockError):
            lock.release()


@celery_app.task(
    bind=True,
    name="events.dispatch_outbox",
    acks_late=True,
    autoretry_for=RETRYABLE,
    retry_backoff=True,
    retry_backoff_max=get_settings().retry_backoff_cap,
    retry_jitter=True,
    max_retries=get_settings().retry_max,
)
def dispatch_outbox(self: Task, kind: str, aggregate_id: str) -> int:
    dispatched = dispatch_aggregate(kind, aggregate_id)
    if dispatched is None:
        # Held by a slow dispatcher: come back shortly rather than wait for the sweep.
        raise self.retry(countdown=1.0)
    return dispatched


def sweep_outboxes_once(limit: int = 200) -> int:
    """Dispatch every outbox whose oldest event waited longer than the sweep age."""
    db = get_db()
    ensure_outbox_indexes(db)
    cutoff = now_utc() - timedelta(seconds=get_settings().outbox_sweep_min_age)
    total = 0
    for kind in OUTBOX_KINDS:
        rows = db[kind].find({"outbox.occurredAt": {"$lt": cutoff}}, {"_id": 1}).limit(limit)
        for row in list(rows):
            total += dispatch_aggregate(kind, str(row["_id"]), wait_s=0) or 0
    return total


@celery_app.task(name="events.sweep_outboxes", acks_late=True)
def sweep_outboxes() -> int:
    # One sweep at a time, even if beat fires again while a slow one runs.
    lock = get_redis().lock("oms:lock:sweep_outboxes", timeout=120, blocking_timeout=0)
    if not lock.acquire():
        return 0
    try:
        swept = sweep_outboxes_once()
        if swept:
            log.info("outbox_swept", events=swept)
        return swept
    finally:
        with suppress(LockError):
            lock.release()


@celery_app.task(bind=True, name=RUN_HANDLER, acks_late=True, max_retries=None)
def run_handler(self: Task, handler: str, event_id: str, redrive: bool = False) -> str:
    """Run one handler for one stored event; retried with backoff, then dead-lettered."""
    spec = get_handler(handler)
    if spec is None:
        DeadLetter.for_handler(handler, event_id, error=f"unknown handler {handler!r}", attempts=1)
        return "unknown_handler"
    doc = get_event(event_id)
    if doc is None:
        log.warning("handler_event_missing", handler=handler, event_id=event_id)
        return "missing"
    try:
        spec.fn(public_event(doc))
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:1000]
        attempts = self.request.retries + 1
        with suppress(Exception):
            get_redis().hincrby(FAILURES_KEY, handler, 1)
        limit = spec.max_retries if spec.max_retries is not None else get_settings().retry_max
        if self.request.retries >= limit:
            DeadLetter.for_handler(handler, event_id, error=error, attempts=attempts)
            log.error("handler_dead_lettered", handler=handler, event_id=event_id, error=error)
            return "dead_letter"
        countdown = retry_countdown(self.request.retries, get_settings().retry_backoff_cap)
        log.warning("handler_retrying", handler=handler, attempt=attempts, error=error)
        raise self.retry(exc=exc, countdown=countdown) from exc
    if redrive:
        DeadLetter.resolve(handler_key(handler, event_id))
    return "ok"


def replay_runs(flt: EventFilter, handlers: list[str] | None = None) -> Iterable[tuple[str, str]]:
    """(handler, eventId) pairs a replay of ``flt`` runs, in store order."""
    for doc in iter_matching(flt):
        for spec in handlers_for(str(doc.get("type"))):
            if handlers is None or spec.name in handlers:
                yield spec.name, doc["_id"]


@celery_app.task(name="events.replay", acks_late=True)
def replay(filters: dict[str, Any], handlers: list[str] | None = None) -> int:
    """Re-run the registered handlers for every stored event matching ``filters``."""
    sent = 0
    with celery_app.producer_or_acquire() as producer:
        for name, event_id in replay_runs(EventFilter.from_json(filters), handlers):
            celery_app.send_task(
                RUN_HANDLER, kwargs={"handler": name, "event_id": event_id}, producer=producer
            )
            sent += 1
    log.info("events_replayed", runs=sent)
    return sent


def _emit_worker_event(event_type: EventType, sender: Any) -> None:
    hostname = getattr(sender, "hostname", None) or "worker"
    # Short-lived clients: this runs in the pool's parent, which must not hold pymongo over forks.
    if not announce(event_type, f"worker:{hostname}", {"component": "worker"}, standalone=True):
        log.warning("system_event_failed", type=str(event_type))


@worker_ready.connect
def _worker_started(sender: Any = None, **_: Any) -> None:
    _emit_worker_event(EventType.SYSTEM_STARTUP, sender)


@worker_shutdown.connect
def _worker_stopping(sender: Any = None, **_: Any) -> None:
    _emit_worker_event(EventType.SYSTEM_SHUTDOWN, sender)
