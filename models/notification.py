"""Notifications shown to a user (order updates; low stock for admins), one per user and event."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from mongoengine import BooleanField, DateTimeField, DictField, Document, StringField
from pymongo import ReturnDocument
from pymongo.errors import BulkWriteError

DUPLICATE_KEY = 11000


def _now() -> datetime:
    return datetime.now(UTC)


class Notification(Document):
    meta = {
        "collection": "notifications",
        "indexes": [
            # Re-running a handler for the same event must not notify twice.
            {"fields": ["user_id", "event_id"], "unique": True},
            {"fields": ["user_id", "-created_at"]},
            {"fields": ["user_id", "read"]},
        ],
    }

    user_id = StringField(db_field="userId", required=True)
    event_id = StringField(db_field="eventId", required=True)
    type = StringField(required=True)
    title = StringField(required=True)
    body = StringField(default="")
    data = DictField(default=dict)
    read = BooleanField(default=False)
    created_at = DateTimeField(db_field="createdAt", default=_now)
    read_at = DateTimeField(db_field="readAt", null=True)

    @classmethod
    def add_many(cls, items: list[dict[str, Any]]) -> int:
        """Insert notifications (dicts of userId, eventId, type, title, body, data) in one batch.

        Already-present (userId, eventId) pairs are skipped; returns how many are new.
        """
        if not items:
            return 0
        at = _now()
        docs = [{"read": False, "createdAt": at, "readAt": None, **item} for item in items]
        try:
            return len(cls._get_collection().insert_many(docs, ordered=False).inserted_ids)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(err.get("code") != DUPLICATE_KEY for err in errors):
                raise
            return int(exc.details.get("nInserted", 0))

    @classmethod
    def page_for(
        cls, user_id: str, *, unread_only: bool, page: int, limit: int
    ) -> tuple[list[Notification], int]:
        filters: dict[str, Any] = {"user_id": user_id}
        if unread_only:
            filters["read"] = False
        query = cls.objects(**filters)
        total = query.count()
        items = list(query.order_by("-created_at").skip((page - 1) * limit).limit(limit))
        return items, total

    @classmethod
    def mark_read(cls, notification_id: str, user_id: str) -> Notification | None:
        """Mark the user's own notification read (idempotent); None if not theirs or absent."""
        try:
            oid = ObjectId(notification_id)
        except (InvalidId, TypeError):
            return None
        coll = cls._get_collection()
        doc = coll.find_one_and_update(
            {"_id": oid, "userId": user_id, "read": False},
            {"$set": {"read": True, "readAt": _now()}},
            return_document=ReturnDocument.AFTER,
        ) or coll.find_one({"_id": oid, "userId": user_id})
        return cls._from_son(doc) if doc else None

    @classmethod
    def mark_all_read(cls, user_id: str) -> int:
        """Mark every unread notification of the user read; how many changed (idempotent)."""
        result = cls._get_collection().update_many(
            {"userId": user_id, "read": False}, {"$set": {"read": True, "readAt": _now()}}
        )
        return int(result.modified_count)

    def to_public(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "eventId": self.event_id,
            "type": self.type,
            "title": self.title,
            "body": self.body,
            "data": self.data or {},
            "read": self.read,
            "createdAt": self.created_at.isoformat() if self.created_at else None,
            "readAt": self.read_at.isoformat() if self.read_at else None,
        }
