"""Dead letters: handler (or compensation) runs that kept failing, kept until an operator acts.

One record per failing unit of work (``key``): failing again after a retry updates the same
record instead of piling up copies. Each record names the task and kwargs that redo the work.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from mongoengine import BooleanField, DateTimeField, DictField, Document, IntField, StringField
from pymongo import ReturnDocument

HANDLER_TASK = "events.run_handler"


def _now() -> datetime:
    return datetime.now(UTC)


def handler_key(handler: str, event_id: str) -> str:
    return f"handler:{handler}:{event_id}"


class DeadLetter(Document):
    meta = {
        "collection": "dead_letters",
        "indexes": [
            {"fields": ["key"], "unique": True},
            {"fields": ["resolved", "-created_at"]},
            {"fields": ["handler", "resolved"]},
            "event_id",
        ],
    }

    key = StringField(required=True)
    handler = StringField(required=True)  # handler name, or e.g. "compensation:refund"
    event_id = StringField(db_field="eventId", null=True)
    task = StringField(required=True)  # the Celery task that redoes the work
    kwargs = DictField(default=dict)
    error = StringField(default="")
    attempts = IntField(default=0)
    failures = IntField(default=0)  # how many times this unit ended here (first + after retries)
    retries = IntField(default=0)  # operator retries so far
    created_at = DateTimeField(db_field="createdAt", default=_now)
    updated_at = DateTimeField(db_field="updatedAt", default=_now)
    retried_at = DateTimeField(db_field="retriedAt", null=True)
    resolved = BooleanField(default=False)
    resolved_at = DateTimeField(db_field="resolvedAt", null=True)

    @classmethod
    def record(
        cls,
        *,
        handler: str,
        error: str,
        attempts: int,
        task: str,
        kwargs: dict[str, Any],
        event_id: str | None = None,
        key: str | None = None,
    ) -> DeadLetter:
        """Create or reopen the dead letter of one unit of work (idempotent per key)."""
        at = _now()
        doc = cls._get_collection().find_one_and_update(
            {"key": key or handler_key(handler, event_id or "")},
            {
                "$set": {
                    "handler": handler,
                    "eventId": event_id,
                    "task": task,
                    "kwargs": kwargs,
                    "error": error[:2000],
                    "attempts": attempts,
                    "updatedAt": at,
                    "resolved": False,
                    "resolvedAt": None,
                },
                "$inc": {"failures": 1},
                "$setOnInsert": {"createdAt": at, "retries": 0, "retriedAt": None},
            },
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        return cls._from_son(doc)

    @classmethod
    def for_handler(cls, handler: str, event_id: str, **kwargs: Any) -> DeadLetter:
        return cls.record(
            handler=handler,
            event_id=event_id,
            task=HANDLER_TASK,
            kwargs={"handler": handler, "event_id": event_id, "redrive": True},
            **kwargs,
        )

    @classmethod
    def get(cls, dead_letter_id: str) -> DeadLetter | None:
        try:
            return cls.objects(id=ObjectId(dead_letter_id)).first()
        except (InvalidId, TypeError):
            return None

    @classmethod
    def resolve(cls, key: str) -> bool:
        """Mark the unit of work done (its retry succeeded). True if a record changed."""
        result = cls._get_collection().update_one(
            {"key": key, "resolved": False}, {"$set": {"resolved": True, "resolvedAt": _now()}}
        )
        return result.modified_count == 1

    def mark_retried(self) -> None:
        self.update(set__retried_at=_now(), inc__retries=1)
        self.reload()

    @classmethod
    def unresolved_count(cls) -> int:
        return cls._get_collection().count_documents({"resolved": False})

    @classmethod
    def counts(cls) -> dict[str, Any]:
        coll = cls._get_collection()
        by_handler: dict[str, int] = {}
        for row in coll.aggregate(
            [{"$match": {"resolved": False}}, {"$group": {"_id": "$handler", "n": {"$sum": 1}}}]
        ):
            by_handler[str(row["_id"])] = int(row["n"])
        return {
            "total": coll.count_documents({}),
            "unresolved": sum(by_handler.values()),
            "unresolvedByHandler": by_handler,
        }

    @classmethod
    def page(cls, *, resolved: bool | None, page: int, limit: int) -> tuple[list[DeadLetter], int]:
        query = cls.objects if resolved is None else cls.objects(resolved=resolved)
        total = query.count()
        items = list(query.order_by("-created_at").skip((page - 1) * limit).limit(limit))
        return items, total

    def to_public(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "id": str(self.id),
            "handler": self.handler,
            "eventId": self.event_id,
            "task": self.task,
            "error": self.error,
            "attempts": self.attempts,
            "failures": self.failures,
            "retries": self.retries,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
            "retriedAt": iso(self.retried_at),
            "resolved": self.resolved,
            "resolvedAt": iso(self.resolved_at),
        }
