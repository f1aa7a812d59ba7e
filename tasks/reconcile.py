"""Beat reconciliation: nothing stays stuck unseen.

Celery keeps a chain only in its broker message; Mongo keeps the truth. Each job here
compares the two worlds (orders, holds, Stripe intents) and repairs the difference. Every
job is idempotent and runs under its own Redis lock, so a second beat by mistake is
harmless; every run records its counts as a ``system.reconciliation`` event and metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta
from typing import Any

import structlog
from pymongo import ReturnDocument
from redis.exceptions import LockError

from core.db import get_db
from core.redis_client import get_redis
from core.settings import get_settings
from gateways.stripe_gateway import get_gateway
from models.event import COUNTERS, announce
from models.order import Order, now_utc
from models.product import Product
from monitoring.metrics import RECONCILIATION_ACTIONS
from tasks.app import celery_app
from tasks.capture import capture_for_shipping
from tasks.dispatch import enqueue_chain, queue_depths, resume
from tasks.events import flush_outbox
from tasks.order_steps import deliver_due_orders
from tasks.outcomes import end_order
from tasks.payment_steps import return_kept_payments, settle_from_intent
from workflows.events import EventType
from workflows.reconciliation import PaymentAction, payment_action, stuck_action
from workflows.states import FINISHED, PAYABLE, TERMINAL, WAITING_ON_CUSTOMER, OrderStatus

log = structlog.get_logger(__name__)
# A hold on an order in one of these is a leak: it ended, or its stock was already sold.
LEAK_STATUSES = TERMINAL | {OrderStatus.SHIPPED, OrderStatus.DELIVERED}


class LockLost(RuntimeError):
    """A newer holder took this job's lock (ours expired or Redis lost it): stop now."""


_held: ContextVar[BeatLock | None] = ContextVar("oms_beat_lock", default=None)


class BeatLock:
    """One beat job's lock: a Redis lock (random token, released by a compare-and-delete
    script, so a run never frees a lock that expired and was taken by another) plus a fencing
    token from Mongo, which outlives Redis. Each acquisition gets a higher token; a holder
    whose token is no longer the highest (its lock expired, or a Redis failover lost it and a
    second beat took the job) fails ``check()`` and stops before its next action."""

    def __init__(self, name: str, ttl_seconds: float, client: Any = None) -> None:
        self.name = name
        self.key = f"oms:lock:beat:{name}"
        client = client or get_redis()
        self.lock = client.lock(self.key, timeout=ttl_seconds, blocking=False)
        self.fence: int | None = None

    def acquire(self) -> bool:
        if not self.lock.acquire(blocking=False):
            return False
        doc = get_db()[COUNTERS].find_one_and_update(
            {"_id": f"fence:{self.key}"},
            {"$inc": {"fence": 1}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        self.fence = int(doc["fence"])
        return True

    def check(self) -> None:
        """Raise LockLost unless this run still holds the newest token."""
        doc = get_db()[COUNTERS].find_one({"_id": f"fence:{self.key}"}, {"fence": 1})
        if doc is None or int(doc["fence"]) != self.fence or not self.lock.owned():
            raise LockLost(f"beat job {self.name}: lock lost (fence {self.fence})")

    def release(self) -> None:
        try:
            self.lock.release()
        except LockError:
            pass  # expired and maybe taken by another run: theirs now, left alone


def still_held() -> None:
    """Called by a job between actions: raises LockLost if a newer run holds its lock."""
    lock = _held.get()
    if lock is not None:
        lock.check()


@contextmanager
def job_lock(name: str, ttl_seconds: float):
    """Hold the job's lock for the run; yields the BeatLock, or None if another run holds it."""
    lock = BeatLock(name, ttl_seconds)
    if not lock.acquire():
        yield None
        return
    token = _held.set(lock)
    try:
        yield lock
    finally:
        _held.reset(token)
        lock.release()


def job_lock_ttl() -> float:
    """Longer than any run can last: the task's hard time limit, plus a margin."""
    settings = get_settings()
    return max(30.0, settings.task_time_limit + 30.0, settings.beat_reconcile_interval * 4)


def run_job(name: str, fn: Callable[[], dict[str, int]]) -> dict[str, Any]:
    """Run one job under its lock, then record what it found and did."""
    with job_lock(name, job_lock_ttl()) as lock:
        if lock is None:
            return {"job": name, "skipped": "locked"}
        try:
            counts = fn()
        except LockLost as exc:
            log.warning("reconciliation_lock_lost", job=name, fence=lock.fence, error=str(exc))
            return {"job": name, "skipped": "lock lost"}
    for action, n in counts.items():
        if n:
            RECONCILIATION_ACTIONS.labels(name, action).inc(n)
    if any(counts.values()):
        log.info("reconciliation_run", job=name, **counts)
    announce(EventType.RECONCILIATION_RUN, f"beat:{name}", {"job": name, **counts})
    return {"job": name, **counts}


# -- stuck orders ---------------------------------------------------------------------------
def _backlog() -> int:
    """Messages waiting in the order and payment queues, on any broker."""
    return sum(queue_depths(("orders", "payments")).values())


def reconcile_stuck_orders() -> dict[str, int]:
    """Unfinished orders untouched for the threshold: resume; after K resumes: flag them."""
    settings = get_settings()
    now = now_utc()
    cutoff = now - timedelta(seconds=settings.stuck_order_seconds)
    finished = [s.value for s in FINISHED]
    counts = {"found": 0, "resumed": 0, "flagged": 0, "backlog": _backlog()}
    if counts["backlog"] > settings.stuck_max_backlog:
        # Orders behind a long queue are waiting, not stuck: resuming them adds load.
        return counts
    for order in Order.objects(status__nin=finished, updated_at__lte=cutoff).limit(500):
        status = order.status_enum
        waiting = status in WAITING_ON_CUSTOMER or (
            status == OrderStatus.PAYMENT_PENDING and not order.payment_method_id
        )
        action = stuck_action(
            status,
            idle_seconds=(now - order.updated_at).total_seconds(),
            threshold_seconds=settings.stuck_order_seconds,
            resumes_so_far=order.resume_count or 0,
            max_resumes=settings.stuck_max_resumes,
            waiting_on_customer=waiting,
        )
        if action == "nothing" or order.needs_attention:
            continue
        still_held()
        counts["found"] += 1
        if action == "resume":
            resume(str(order.id), actor="beat:stuck_orders")
            counts["resumed"] += 1
        elif Order.flag_attention(str(order.id), "stuck: resumed too often", "beat:stuck_orders"):
            announce(
                EventType.SYSTEM_ERROR,
                "beat:stuck_orders",
                {"orderId": str(order.id), "reason": "order stuck after retries"},
            )
            flush_outbox("orders", str(order.id))
            counts["flagged"] += 1
    return counts


# -- payments vs Stripe ---------------------------------------------------------------------
def reconcile_payments() -> dict[str, int]:
    """Waiting payments compared with their intent: confirm, fail or time out.

    A chain that died before confirming is the stuck sweep's to resume (recorded, once per
    threshold, not behind a backlog); re-enqueueing it here at every run as well buried each
    queued order's own confirm_payment under copies of the others'.
    """
    settings = get_settings()
    gateway = get_gateway()
    now = now_utc()
    counts = {"checked": 0, "confirmed": 0, "failed": 0, "timed_out": 0}
    for order in (
        Order.objects(status__in=[s.value for s in PAYABLE]).order_by("updated_at").limit(200)
    ):
        counts["checked"] += 1
        intent = (
            gateway.retrieve_intent(order.payment_intent_id) if order.payment_intent_id else None
        )
        action = payment_action(
            order.status_enum,
            intent.status if intent else None,
            age_seconds=(now - order.created_at).total_seconds(),
            payment_window_seconds=(
                settings.payment_window_seconds
                if order.payment_method_id
                else min(settings.payment_window_seconds, settings.unpaid_hold_no_method_seconds)
            ),
            has_payment_method=bool(order.payment_method_id),
        )
        oid = str(order.id)
        if action in (PaymentAction.MARK_CONFIRMED, PaymentAction.FAIL) and intent is not None:
            moved = settle_from_intent(order, intent, actor="beat:payments")
            if moved is not None and moved.status_enum == OrderStatus.CONFIRMED:
                enqueue_chain(oid, moved.correlation_id, OrderStatus.CONFIRMED)
                flush_outbox("orders", oid)
                counts["confirmed"] += 1
            elif moved is not None:
                counts["failed"] += 1
        elif action == PaymentAction.TIMEOUT:
            ended, _ = end_order(
                oid, OrderStatus.FAILED, reason="payment_timeout", actor="beat:payments"
            )
            counts["timed_out"] += int(ended is not None and ended.status == "failed")
    counts["authorizations_captured"] = capture_expiring_authorizations()
    return counts


def capture_expiring_authorizations(limit: int = 100) -> int:
    """Manual capture: an authorization about to lapse (Stripe keeps it 7 days) on an order
    that has not shipped yet is captured now, so the money is not lost; the order is flagged
    so an operator sees why it waited, and it ships (or is refunded) as usual afterwards."""
    settings = get_settings()
    keep = settings.authorization_validity_seconds - settings.authorization_expiry_margin_seconds
    edge = now_utc() - timedelta(seconds=max(keep, 0))
    captured = 0
    expiring = Order.objects(
        status=OrderStatus.CONFIRMED.value,
        authorized_cents__gt=0,
        paid_cents=0,
        authorized_at__lte=edge,
    ).limit(limit)
    for order in expiring:
        if capture_for_shipping(order, actor="beat:payments") is not None:
            captured += 1
            Order.flag_attention(
                str(order.id),
                "card authorization about to expire: captured before shipping",
                "beat:payments",
            )
            flush_outbox("orders", str(order.id))
    return captured


# -- leaked holds ---------------------------------------------------------------------------
def reconcile_leaked_holds() -> dict[str, int]:
    """Holds whose order is finished (or gone) go back to available stock."""
    counts = {"released": 0}
    for product in Product.objects(holds__ne={}).only("sku", "holds"):
        still_held()
        for order_id, quantity in list((product.holds or {}).items()):
            order = Order.get(order_id)
            if order is not None and order.status_enum not in LEAK_STATUSES:
                continue
            if Product.release(product.sku, order_id, int(quantity)):
                counts["released"] += 1
    return counts


# -- orphan intents -------------------------------------------------------------------------
def reconcile_orphan_intents() -> dict[str, int]:
    """One pass over recent intents carrying our metadata.order_id (a bounded slice: the
    newest AUTO_REFUND_SCAN_LIMIT within AUTO_REFUND_LOOKBACK_SECONDS):

    * money held for an order that will never ship (succeeded and unrefunded, or an
      authorization, for a cancelled/failed order; a second charge) goes back, with no
      operator action (``return_kept_payments``);
    * an open intent its order does not know is cancelled.
    """
    settings = get_settings()
    counts = {"checked": 0, "cancelled": 0}
    gateway = get_gateway()
    now = now_utc()
    since = int(now.timestamp()) - settings.auto_refund_lookback_seconds
    # Young intents may be a step's own, not stored yet: leave them a grace period.
    grace_edge = int(now.timestamp()) - settings.orphan_intent_grace_seconds
    intents = gateway.list_intents(created_after=since, limit=settings.auto_refund_scan_limit)
    counts.update(return_kept_payments(intents))
    for intent in intents:
        if not intent.order_id or intent.status in ("succeeded", "canceled", "requires_capture"):
            continue
        if intent.created is not None and intent.created > grace_edge:
            continue
        counts["checked"] += 1
        order = Order.get(intent.order_id)
        if order is not None and order.payment_intent_id == intent.id:
            continue
        gateway.cancel_intent(intent.id)
        counts["cancelled"] += 1
    return counts


def expire_idempotency_keys() -> dict[str, int]:
    """Idempotency keys older than IDEMPOTENCY_TTL_SECONDS are forgotten (reusable again);
    the order itself stays."""
    cutoff = now_utc() - timedelta(seconds=get_settings().idempotency_ttl_seconds)
    expired = Order.objects(idempotency_key__ne=None, created_at__lte=cutoff).update(
        unset__idempotency_key=True
    )
    return {"expired": int(expired or 0)}


def deliver_orders() -> dict[str, int]:
    return {"delivered": deliver_due_orders()}


def heartbeat() -> dict[str, int]:
    return {"beat": 1}


JOBS: dict[str, Callable[[], dict[str, int]]] = {
    "stuck_orders": reconcile_stuck_orders,
    "payments": reconcile_payments,
    "leaked_holds": reconcile_leaked_holds,
    "orphan_intents": reconcile_orphan_intents,
    "deliveries": deliver_orders,
    "idempotency_keys": expire_idempotency_keys,
}


@celery_app.task(name="maintenance.reconcile", acks_late=True, ignore_result=True)
def reconcile(job: str) -> dict[str, Any]:
    """Run one named reconciliation job (beat schedules each on its own interval)."""
    return run_job(job, JOBS[job])


@celery_app.task(name="maintenance.health_check", ignore_result=True)
def health_check() -> bool:
    """Heartbeat: a ``system.health_check`` event proves beat, broker and worker are alive."""
    return announce(EventType.SYSTEM_HEALTH_CHECK, "beat", {"at": now_utc().isoformat()})
