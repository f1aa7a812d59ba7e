"""Outgoing webhooks: deliveries made from the events, sent in order per order, retried.

The ``outgoing_webhooks`` event handler (it runs inside the outbox dispatch, never on the
request path) writes one delivery per matching subscription and asks the ``webhooks`` queue
to send it. ``webhooks.deliver`` drains one (subscription, aggregate) at a time under a
Redis lock, oldest ``seq`` first, so a receiver gets one order's events in order; a failed
attempt sets the delivery's next attempt (exponential back-off with jitter, over hours) and
stops there, and beat's ``webhooks.send_due`` resumes whatever is due. A run of failures
disables the subscription and tells the admins. At least once: receivers dedupe on the
``OMS-Delivery-Id`` header (the same for every attempt of one delivery).
"""

from __future__ import annotations

import json
import time
from contextlib import suppress
from typing import Any

import httpx
import structlog
from redis.exceptions import LockError

from core.redis_client import get_redis
from core.settings import get_settings
from core.targets import target_refusal
from models.event import now_utc, seq_of
from models.notification import Notification
from models.outgoing_webhook import (
    FAILED,
    PENDING,
    SUCCEEDED,
    VERSION_KEY,
    WebhookDelivery,
    WebhookSubscription,
)
from monitoring.metrics import OUTGOING_WEBHOOK_ATTEMPTS
from tasks.app import celery_app
from tasks.dispatch import CORRELATION_HEADER
from tasks.handlers import admin_ids, register
from workflows.outgoing_webhooks import (
    DELIVERY_HEADER,
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    retry_delay,
    signature,
    wants,
)

log = structlog.get_logger(__name__)
DELIVER = "webhooks.deliver"
MAX_PER_RUN = 200  # deliveries one task sends before it hands the rest to the next run
_UNREAD = object()
_cache: dict[str, Any] = {"version": _UNREAD, "subs": []}


def _active_subscriptions() -> list[tuple[str, list[str]]]:
    """(id, patterns) of the active subscriptions, re-read only when one has changed.

    One Redis GET per event instead of one Mongo query per event: most shops have a
    handful of subscriptions that change rarely, and orders emit many events.
    """
    version = get_redis().get(VERSION_KEY)
    if version != _cache["version"]:  # also after Redis lost the key: None differs from "7"
        subs = WebhookSubscription.objects(active=True).only("id", "event_types")
        _cache["subs"] = [(s.id, list(s.event_types)) for s in subs]
        _cache["version"] = version
    return _cache["subs"]


@register("outgoing_webhooks", types=None)
def queue_outgoing_webhooks(event: dict[str, Any]) -> None:
    """One delivery per active subscription that wants this event type (idempotent)."""
    targets = [sid for sid, patterns in _active_subscriptions() if wants(patterns, event["type"])]
    if not targets:
        return
    aggregate = str(event.get("aggregateId") or "")
    seq = seq_of(event["eventId"]) or 0
    WebhookDelivery.add_many(
        [
            {
                "subscription_id": sid,
                "event_id": event["eventId"],
                "event_type": event["type"],
                "aggregate_id": aggregate,
                "seq": seq,
                "payload": event,
            }
            for sid in targets
        ]
    )
    for sid in targets:
        celery_app.send_task(
            DELIVER,
            kwargs={"subscription_id": sid, "aggregate_id": aggregate},
            headers={CORRELATION_HEADER: event.get("correlationId")},
        )


def _post(sub: WebhookSubscription, delivery: WebhookDelivery) -> dict[str, Any]:
    """One HTTP attempt; its log entry (never raises for the receiver's faults)."""
    settings = get_settings()
    attempt: dict[str, Any] = {"at": now_utc(), "statusCode": None, "latencyMs": 0}
    refusal = target_refusal(sub.url, settings)
    if refusal:
        attempt["error"] = f"target refused: {refusal}"
        return attempt
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode("utf-8")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "oms-webhooks/1",
        SIGNATURE_HEADER: signature(sub.secret(), int(time.time()), body),
        DELIVERY_HEADER: delivery.id,
        EVENT_ID_HEADER: delivery.event_id,
        EVENT_TYPE_HEADER: delivery.event_type,
    }
    started = time.monotonic()
    try:
        answer = httpx.post(
            sub.url,
            content=body,
            headers=headers,
            timeout=settings.webhook_timeout_seconds,
            follow_redirects=False,
        )
        attempt["statusCode"] = answer.status_code
        attempt["responseBody"] = answer.text[: settings.webhook_body_log_chars]
    except httpx.HTTPError as exc:
        attempt["error"] = f"{type(exc).__name__}: {exc}"[:300]
    attempt["latencyMs"] = round((time.monotonic() - started) * 1000, 1)
    return attempt


def _disable_notice(sub: WebhookSubscription, reason: str) -> None:
    Notification.add_many(
        [
            {
                "userId": admin,
                "eventId": f"webhook-disabled:{sub.id}:{int(time.time())}",
                "type": "webhook.subscription.disabled",
                "title": "A webhook subscription was disabled",
                "body": f"{sub.url} kept failing ({reason}). Fix the receiver, then "
                "re-enable the subscription: what waited is sent then.",
                "data": {"subscriptionId": sub.id, "url": sub.url},
            }
            for admin in admin_ids()
        ]
    )


def attempt_delivery(sub: WebhookSubscription, delivery: WebhookDelivery) -> str:
    """Send ``delivery`` once and record it: "succeeded", "given_up" (retries exhausted: the
    next delivery may go now), "later" (retry scheduled) or "disabled" (this failure
    disabled the subscription)."""
    settings = get_settings()
    attempt = _post(sub, delivery)
    code = attempt.get("statusCode")
    if code is not None and 200 <= code < 300:
        WebhookDelivery.record_attempt(delivery.id, attempt, status=SUCCEEDED, retry_in=None)
        WebhookSubscription.record_success(sub.id)
        OUTGOING_WEBHOOK_ATTEMPTS.labels("succeeded").inc()
        return "succeeded"
    tries = delivery.attempts + 1
    exhausted = tries >= settings.webhook_max_attempts
    delay = retry_delay(
        tries, base=settings.webhook_retry_base_seconds, cap=settings.webhook_retry_max_seconds
    )
    WebhookDelivery.record_attempt(
        delivery.id,
        attempt,
        status=FAILED if exhausted else PENDING,
        retry_in=None if exhausted else delay,
    )
    refused = str(attempt.get("error", "")).startswith("target refused")
    OUTGOING_WEBHOOK_ATTEMPTS.labels(
        "refused" if refused else ("failed" if exhausted else "retrying")
    ).inc()
    reason = f"HTTP {code}" if code is not None else str(attempt.get("error"))
    log.warning(
        "webhook_attempt_failed",
        subscription_id=sub.id,
        delivery_id=delivery.id,
        attempt=tries,
        reason=reason,
    )
    if WebhookSubscription.record_failure(
        sub.id,
        disable_after=settings.webhook_disable_after,
        disable_after_seconds=settings.webhook_disable_after_seconds,
        reason=reason,
    ):
        log.warning("webhook_subscription_disabled", subscription_id=sub.id, url=sub.url)
        _disable_notice(sub, reason)
        return "disabled"
    return "given_up" if exhausted else "later"


@celery_app.task(name=DELIVER, acks_late=True)
def deliver(subscription_id: str, aggregate_id: str) -> int:
    """Send this aggregate's due deliveries to this subscription, in order; how many went."""
    timeout = get_settings().webhook_timeout_seconds
    lock = get_redis().lock(
        f"oms:lock:webhook:{subscription_id}:{aggregate_id}",
        timeout=int(timeout * 2 + 30),
        blocking_timeout=0,
    )
    if not lock.acquire():
        return 0  # another run is sending this order's deliveries; it will see ours too
    sent = 0
    try:
        for _ in range(MAX_PER_RUN):
            sub = WebhookSubscription.get(subscription_id)
            if sub is None or not sub.active:
                break
            delivery = WebhookDelivery.next_for(subscription_id, aggregate_id)
            if delivery is None or _later(delivery):
                break
            outcome = attempt_delivery(sub, delivery)
            sent += outcome == "succeeded"
            if outcome not in ("succeeded", "given_up"):
                break
    finally:
        with suppress(LockError):
            lock.release()
    return sent


def _later(delivery: WebhookDelivery) -> bool:
    due = delivery.next_attempt_at
    if due is None:
        return False
    now = now_utc()
    return (due if due.tzinfo else due.replace(tzinfo=now.tzinfo)) > now


@celery_app.task(name="webhooks.send_due", acks_late=True)
def send_due(limit: int = 500) -> int:
    """Beat: ask for every (subscription, order) whose next delivery's time has come."""
    active = [s.id for s in WebhookSubscription.objects(active=True).only("id")]
    if not active:
        return 0
    pairs = WebhookDelivery.due(limit, subscription_ids=active)
    with celery_app.producer_or_acquire() as producer:
        for sid, aggregate in pairs:
            celery_app.send_task(
                DELIVER,
                kwargs={"subscription_id": sid, "aggregate_id": aggregate},
                producer=producer,
            )
    return len(pairs)
