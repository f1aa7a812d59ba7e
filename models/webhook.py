"""Stripe webhook event ids already seen: a unique _id makes duplicates a no-op."""

from __future__ import annotations

from datetime import UTC, datetime

from mongoengine import DateTimeField, Document, NotUniqueError, StringField

from core.settings import get_settings


def _now() -> datetime:
    return datetime.now(UTC)


class WebhookEvent(Document):
    meta = {
        "collection": "webhook_events",
        "indexes": [
            {
                "fields": ["received_at"],
                "expireAfterSeconds": get_settings().webhook_id_ttl_seconds,
            }
        ],
    }

    id = StringField(primary_key=True)
    type = StringField(required=True)
    order_id = StringField(null=True)
    received_at = DateTimeField(default=_now)

    @classmethod
    def record_once(cls, event_id: str, event_type: str, order_id: str | None) -> bool:
        """True the first time this Stripe event id is seen, False for a duplicate."""
        try:
            cls(id=event_id, type=event_type, order_id=order_id).save(force_insert=True)
            return True
        except NotUniqueError:
            return False

    @classmethod
    def forget(cls, event_id: str) -> None:
        """Undo the record when we could not act, so Stripe's retry is processed."""
        cls.objects(id=event_id).delete()
