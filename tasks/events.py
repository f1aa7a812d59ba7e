"""Outbox dispatch, the outbox sweep, retried handler runs, dead letters and replay.

``dispatch_aggregate(kind, aggregate_id)``, under a per-aggregate Redis lock (so one
aggregate's events are stored and published in outbox order): read the outbox, store the
events (one batch, duplicates ignored), publish them on ``oms:events``, run every
interested handler right there (a handler that raises is handed to an
``events.run_handler`` task, retried with backoff, then dead-lettered), then ``$pull``
exactly those event ids. A crash anywhere before the pull means the next dispatch (or the
sweep) does it again: at-least-once, and every consumer dedupes by ``eventId``.

The step that wrote an outbox dispatches it itself (:func:`flush_outbox`); the API and
anything that finds the aggregate busy queue ``events.dispatch_outbox`` instead, and beat
sweeps whatever is left.
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
from monitoring.tracing import annotate, span
from tasks.app import celery_app
from tasks.dispatch import enqueue_outbox
from tasks.handlers import HandlerSpec, get_handler, handlers_for, load_plugins
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


def _handler_limit(spec: HandlerSpec) -> int:
    return spec.max_retries if spec.max_retries is not None else get_settings().retry_max


def _count_failure(handler: str) -> None:
    with suppress(Exception):
        get_redis().hincrby(FAILURES_KEY, handler, 1)


def run_handlers(docs: Iterable[dict[str, Any]]) -> tuple[int, int]:
    """Run each interested handler on each stored event, here and now.

    A run that raises becomes an ``events.run_handler`` task (its first retry, after a
    backoff) or, for a handler allowed no retries, a dead letter at once. Returns
    (runs that succeeded, runs handed on).
    """
    wanted = [(doc, handlers_for(str(doc.get("type")))) for doc in docs]
    last: dict[tuple[str, str], str] = {}  # (latest-only handler, aggregate) -> its last event
    for doc, specs in wanted:
        for spec in specs:
            if spec.latest_only:
                last[spec.name, str(doc.get("aggregateId"))] = doc["_id"]
    ok, failed = 0, []
    for doc, all_specs in wanted:
        specs = [
            spec
            for spec in all_specs
            if not spec.latest_only or last[spec.name, str(doc.get("aggregateId"))] == doc["_id"]
        ]
        event = public_event(doc) if specs else None
        for spec in specs:
            try:
                spec.fn(event)
                ok += 1
            except Exception as exc:  # any handler bug: retried apart, never blocks the rest
                error = f"{type(exc).__name__}: {exc}"[:1000]
                _count_failure(spec.name)
                log.warning("handler_failed", handler=spec.name, event_id=doc["_id"], error=error)
                failed.append((spec, doc, error))
    if failed:
        cap = get_settings().retry_backoff_cap
        with celery_app.producer_or_acquire() as producer:
            for spec, doc, error in failed:
                if _handler_limit(spec) <= 0:
                    DeadLetter.for_handler(spec.name, doc["_id"], error=error, attempts=1)
                    continue
                celery_app.send_task(
                    RUN_HANDLER,
                    kwargs={"handler": spec.name, "event_id": doc["_id"], "prior_attempts": 1},
                    headers={CORRELATION_HEADER: doc.get("correlationId")},
                    countdown=retry_countdown(0, cap),
                    producer=producer,
                )
    return ok, len(failed)


def dispatch_aggregate(
    kind: str,
    aggregate_id: str,
    *,
    wait_s: float = 5.0,
    outbox: list[dict[str, Any]] | None = None,
) -> int | None:
    """Move one aggregate's outbox to the store, the bus and the handlers.

    ``outbox`` is the aggregate's outbox as the caller's own write left it (read back by
    the compare-and-set): it saves a read. Events pushed after that write belong to their
    writer's dispatch; an event of the snapshot another dispatcher took meanwhile is
    stored once and at worst published twice (consumers dedupe).

    Returns how many events were dispatched, or None when another dispatcher holds the
    aggregate for longer than ``wait_s`` (it will take whatever is pending).
    """
    with span("outbox.dispatch", kind=kind, aggregate_id=aggregate_id):
        return _dispatch_aggregate(kind, aggregate_id, wait_s, outbox)


def _dispatch_aggregate(
    kind: str, aggregate_id: str, wait_s: float, outbox: list[dict[str, Any]] | None
) -> int | None:
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
        if outbox is None:
            outbox = (coll.find_one({"_id": key}, {"outbox": 1}) or {}).get("outbox") or []
        outbox = [e for e in outbox if e.get("eventId")]
        if not outbox:
            return 0
        # A sweep has no correlation id of its own: log under the events'. A step keeps its
        # own (another aggregate's outbox, a product's say, may start with someone else's).
        if not structlog.contextvars.get_contextvars().get("correlation_id"):
            structlog.contextvars.bind_contextvars(correlation_id=outbox[0].get("correlationId"))
            annotate(correlation_id=outbox[0].get("correlationId"))
        annotate(events=len(outbox))
        stored = store_events(outbox)
        publish_events(bus_message(d) for d in stored)
        run_handlers(stored)
        ids = [e["eventId"] for e in outbox]
        # Only what was dispatched: events pushed meanwhile stay for the next run.
        coll.update_one({"_id": key}, {"$pull": {"outbox": {"eventId": {"$in": ids}}}})
        log.info("outbox_dispatched", kind=kind, aggregate_id=aggregate_id, events=len(ids))
        return len(ids)
    finally:
        with suppress(LockError):
            lock.release()


def flush_outbox(kind: str, aggregate_id: str, outbox: list[dict[str, Any]] | None = None) -> None:
    """Dispatch an aggregate's outbox in this process (the task that just wrote to it).

    ``outbox``: the outbox as this task's write left it, when it has it (saves a read).

    If another dispatcher holds the aggregate, or the store or the bus fails, the events
    are still in the outbox: an ``events.dispatch_outbox`` task is queued for them (and
    if even that fails, beat's sweep takes them).
    """
    try:
        if dispatch_aggregate(kind, aggregate_id, wait_s=0, outbox=outbox) is not None:
            return
    except Exception as exc:  # the events are safe in the outbox; hand them on
        log.warning("outbox_flush_failed", kind=kind, error=f"{type(exc).__name__}: {exc}"[:300])
    try:
        enqueue_outbox(kind, aggregate_id)
    except Exception as exc:  # the broker is down too: the sweep will find the outbox
        log.warning("outbox_enqueue_failed", kind=kind, error=f"{type(exc).__name__}: {exc}"[:300])


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
def run_handler(
    self: Task, handler: str, event_id: str, redrive: bool = False, prior_attempts: int = 0
) -> str:
    """Run one handler for one stored event; retried with backoff, then dead-lettered.

    ``prior_attempts`` counts the runs before this task (the dispatcher's own, inline).
    """
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
        retries = self.request.retries + prior_attempts
        attempts = retries + 1
        _count_failure(handler)
        if retries >= _handler_limit(spec):
            DeadLetter.for_handler(handler, event_id, error=error, attempts=attempts)
            log.error("handler_dead_lettered", handler=handler, event_id=event_id, error=error)
            return "dead_letter"
        countdown = retry_countdown(retries, get_settings().retry_backoff_cap)
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
