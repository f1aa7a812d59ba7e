"""Outgoing webhooks: the subscriptions admins manage and each delivery with its attempts.

A delivery is one (subscription, event) pair, created once by the event handler (a unique
index makes a second run of the handler a no-op) and sent in ``seq`` order per
(subscription, aggregate), so a receiver sees one order's events in the order they happened.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta
from typing import Any

from mongoengine import (
    BooleanField,
    DateTimeField,
    DictField,
    Document,
    IntField,
    ListField,
    NotUniqueError,
    StringField,
)
from pymongo import ReturnDocument

from core.bus import to_jsonable
from core.crypto import KeyRing, decrypt_str, encrypt_str
from core.redis_client import get_redis
from models.event import now_utc as _now
from workflows.outgoing_webhooks import SECRET_PREFIX

PENDING, SUCCEEDED, FAILED = "pending", "succeeded", "failed"
ATTEMPT_LOG = 20  # attempts kept per delivery (the newest); the count is kept in full
# A new random value on every change of a subscription: each process re-reads the active
# ones when it differs from what it read last (random, so a Redis that lost the key and
# counts again can never repeat a value some process still holds).
VERSION_KEY = "oms:webhooks:subscriptions:version"


def subscriptions_changed() -> None:
    get_redis().set(VERSION_KEY, uuid.uuid4().hex)


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


class WebhookSubscription(Document):
    meta = {"collection": "webhook_subscriptions", "indexes": [{"fields": ["active"]}]}

    id = StringField(primary_key=True, default=lambda: _new_id("whsub"))
    url = StringField(required=True)
    event_types = ListField(StringField(), db_field="eventTypes", required=True)
    description = StringField(default="")
    secret_enc = StringField(db_field="secretEnc", required=True)
    active = BooleanField(default=True)
    failure_streak = IntField(db_field="failureStreak", default=0)
    failing_since = DateTimeField(db_field="failingSince", null=True)
    disabled_reason = StringField(db_field="disabledReason", null=True)
    disabled_at = DateTimeField(db_field="disabledAt", null=True)
    last_success_at = DateTimeField(db_field="lastSuccessAt", null=True)
    last_failure_at = DateTimeField(db_field="lastFailureAt", null=True)
    created_by = StringField(db_field="createdBy", default="")
    created_at = DateTimeField(db_field="createdAt", default=_now)
    updated_at = DateTimeField(db_field="updatedAt", default=_now)

    @classmethod
    def create(
        cls,
        *,
        url: str,
        event_types: list[str],
        description: str,
        created_by: str,
        keyring: KeyRing | None = None,
    ) -> tuple[WebhookSubscription, str]:
        """A new active subscription and its signing secret (returned here only, once)."""
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        sub = cls(
            url=url,
            event_types=event_types,
            description=description,
            secret_enc=encrypt_str(secret, keyring),
            created_by=created_by,
        )
        sub.save(force_insert=True)
        subscriptions_changed()
        return sub, secret

    def secret(self, keyring: KeyRing | None = None) -> str:
        return decrypt_str(self.secret_enc, keyring)

    def public(self) -> dict[str, Any]:
        """As admins see it; the secret is never shown again after creation."""
        return to_jsonable(
            {
                "id": self.id,
                "url": self.url,
                "eventTypes": list(self.event_types),
                "description": self.description,
                "active": self.active,
                "failureStreak": self.failure_streak,
                "failingSince": self.failing_since,
                "disabledReason": self.disabled_reason,
                "disabledAt": self.disabled_at,
                "lastSuccessAt": self.last_success_at,
                "lastFailureAt": self.last_failure_at,
                "createdAt": self.created_at,
                "updatedAt": self.updated_at,
            }
        )

    @classmethod
    def get(cls, subscription_id: str) -> WebhookSubscription | None:
        return cls.objects(id=subscription_id).first()

    @classmethod
    def record_success(cls, subscription_id: str) -> None:
        cls._get_collection().update_one(
            {"_id": subscription_id},
            {"$set": {"failureStreak": 0, "failingSince": None, "lastSuccessAt": _now()}},
        )

    @classmethod
    def record_failure(
        cls, subscription_id: str, *, disable_after: int, disable_after_seconds: float, reason: str
    ) -> bool:
        """Count one failed attempt; True exactly once: when this failure disables it.

        A run of failures is both long and many: ``disable_after`` attempts in a row over at
        least ``disable_after_seconds``, so a receiver down for a deploy is never cut off.
        """
        coll = cls._get_collection()
        now = _now()
        coll.update_one(
            {"_id": subscription_id, "failingSince": None}, {"$set": {"failingSince": now}}
        )
        doc = coll.find_one_and_update(
            {"_id": subscription_id},
            {"$inc": {"failureStreak": 1}, "$set": {"lastFailureAt": now}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None or doc.get("failureStreak", 0) < disable_after:
            return False
        since = doc.get("failingSince") or now
        if since.tzinfo is None:
            since = since.replace(tzinfo=now.tzinfo)
        if (now - since).total_seconds() < disable_after_seconds:
            return False
        disabled = cls._get_collection().update_one(
            {"_id": subscription_id, "active": True},
            {"$set": {"active": False, "disabledReason": reason, "disabledAt": _now()}},
        )
        subscriptions_changed()
        return disabled.modified_count == 1

    @classmethod
    def update_settings(
        cls, subscription_id: str, fields: dict[str, Any]
    ) -> WebhookSubscription | None:
        update: dict[str, Any] = {**fields, "updatedAt": _now()}
        if fields.get("active") is True:  # re-enabled by an admin: a fresh start, sent now
            update.update(
                {
                    "failureStreak": 0,
                    "failingSince": None,
                    "disabledReason": None,
                    "disabledAt": None,
                }
            )
            WebhookDelivery._get_collection().update_many(
                {"subscriptionId": subscription_id, "status": PENDING},
                {"$set": {"nextAttemptAt": _now()}},
            )
        cls._get_collection().update_one({"_id": subscription_id}, {"$set": update})
        subscriptions_changed()
        return cls.get(subscription_id)

    @classmethod
    def delete_with_deliveries(cls, subscription_id: str) -> bool:
        gone = cls._get_collection().delete_one({"_id": subscription_id}).deleted_count == 1
        WebhookDelivery._get_collection().delete_many({"subscriptionId": subscription_id})
        subscriptions_changed()
        return gone


class WebhookDelivery(Document):
    meta = {
        "collection": "webhook_deliveries",
        "indexes": [
            # The handler may run twice for one event: one delivery per origin all the same.
            {"fields": ["subscription_id", "event_id", "origin"], "unique": True},
            {"fields": ["subscription_id", "aggregate_id", "status", "seq"]},
            {"fields": ["subscription_id", "-created_at"]},
            {"fields": ["status", "next_attempt_at"]},
        ],
    }

    id = StringField(primary_key=True, default=lambda: _new_id("whd"))
    subscription_id = StringField(db_field="subscriptionId", required=True)
    event_id = StringField(db_field="eventId", required=True)
    event_type = StringField(db_field="eventType", required=True)
    aggregate_id = StringField(db_field="aggregateId", required=True)
    seq = IntField(default=0)
    # "event" for the delivery the event made; "manual:<id>" for an admin's redelivery.
    origin = StringField(default="event")
    payload = DictField(required=True)
    status = StringField(default=PENDING)
    attempts = IntField(default=0)
    attempt_log = ListField(DictField(), db_field="attemptLog", default=list)
    next_attempt_at = DateTimeField(db_field="nextAttemptAt", default=_now)
    delivered_at = DateTimeField(db_field="deliveredAt", null=True)
    created_at = DateTimeField(db_field="createdAt", default=_now)

    @classmethod
    def add_many(cls, docs: list[dict[str, Any]]) -> int:
        """Insert deliveries not made yet (by subscription, event, origin); how many are new."""
        made = 0
        for doc in docs:
            try:
                cls(**doc).save(force_insert=True)
                made += 1
            except NotUniqueError:
                pass
        return made

    @classmethod
    def next_for(cls, subscription_id: str, aggregate_id: str) -> WebhookDelivery | None:
        """The oldest pending delivery of this aggregate to this subscription (its turn next)."""
        return (
            cls.objects(subscription_id=subscription_id, aggregate_id=aggregate_id, status=PENDING)
            .order_by("seq", "created_at")
            .first()
        )

    @classmethod
    def record_attempt(
        cls, delivery_id: str, attempt: dict[str, Any], *, status: str, retry_in: float | None
    ) -> None:
        fields: dict[str, Any] = {"status": status}
        if status == SUCCEEDED:
            fields["deliveredAt"] = attempt["at"]
        if retry_in is not None:
            fields["nextAttemptAt"] = attempt["at"] + timedelta(seconds=retry_in)
        cls._get_collection().update_one(
            {"_id": delivery_id},
            {
                "$set": fields,
                "$inc": {"attempts": 1},
                "$push": {"attemptLog": {"$each": [attempt], "$slice": -ATTEMPT_LOG}},
            },
        )

    @classmethod
    def page_for(
        cls, subscription_id: str, *, status: str | None, page: int, limit: int
    ) -> tuple[list[WebhookDelivery], int]:
        query: dict[str, Any] = {"subscription_id": subscription_id}
        if status:
            query["status"] = status
        cursor = cls.objects(**query)
        items = list(cursor.order_by("-created_at").skip((page - 1) * limit).limit(limit))
        return items, cursor.count()

    @classmethod
    def redeliver(cls, original: WebhookDelivery) -> WebhookDelivery:
        """A new delivery (its own id) of the same event, sent as soon as its turn comes."""
        copy = cls(
            subscription_id=original.subscription_id,
            event_id=original.event_id,
            event_type=original.event_type,
            aggregate_id=original.aggregate_id,
            seq=original.seq,
            origin=f"manual:{uuid.uuid4().hex[:12]}",
            payload=original.payload,
        )
        copy.save(force_insert=True)
        return copy

    @classmethod
    def due(cls, limit: int, subscription_ids: list[str]) -> list[tuple[str, str]]:
        """(subscription, aggregate) pairs with a pending delivery whose time has come."""
        pairs: dict[tuple[str, str], None] = {}
        cursor = (
            cls.objects(
                status=PENDING,
                next_attempt_at__lte=_now(),
                subscription_id__in=subscription_ids,
            )
            .only("subscription_id", "aggregate_id")
            .order_by("next_attempt_at")
            .limit(limit)
        )
        for d in cursor:
            pairs[(d.subscription_id, d.aggregate_id)] = None
        return list(pairs)

    def public(self) -> dict[str, Any]:
        return to_jsonable(
            {
                "id": self.id,
                "subscriptionId": self.subscription_id,
                "eventId": self.event_id,
                "eventType": self.event_type,
                "aggregateId": self.aggregate_id,
                "origin": self.origin,
                "status": self.status,
                "attempts": self.attempts,
                "attemptLog": self.attempt_log,
                "nextAttemptAt": self.next_attempt_at if self.status == PENDING else None,
                "deliveredAt": self.delivered_at,
                "createdAt": self.created_at,
            }
        )
