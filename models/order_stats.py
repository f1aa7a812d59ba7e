"""A per-user projection of order events: orders by status and money spent.

Each user's document keeps the last applied state of each of their orders, keyed by the
order's ``aggregateVersion``: an event whose version is not newer is a no-op, so replays,
duplicate deliveries and out-of-order runs all converge on the same numbers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mongoengine import DateTimeField, DictField, Document, StringField
from pymongo.errors import DuplicateKeyError


class OrderStats(Document):
    meta = {"collection": "order_stats"}

    user_id = StringField(primary_key=True)
    orders = DictField(default=dict)  # order id -> {status, v, totalCents, paidCents, ...}
    updated_at = DateTimeField(db_field="updatedAt")

    @classmethod
    def apply(cls, user_id: str, order_id: str, version: int, entry: dict[str, Any]) -> bool:
        """Record the order's state as of ``version`` unless a newer one is there."""
        path = f"orders.{order_id}"
        coll = cls._get_collection()
        fresher = {"$or": [{f"{path}.v": {"$lt": version}}, {path: {"$exists": False}}]}
        update = {"$set": {path: {**entry, "v": version}, "updatedAt": datetime.now(UTC)}}
        try:
            result = coll.update_one({"_id": user_id, **fresher}, update, upsert=True)
        except DuplicateKeyError:
            # The user's document exists and already holds this version or a newer one.
            return False
        return result.modified_count == 1 or result.upserted_id is not None

    @classmethod
    def for_user(cls, user_id: str) -> dict[str, Any]:
        doc = cls._get_collection().find_one({"_id": user_id}) or {}
        counts: dict[str, int] = {}
        spent = 0
        for entry in (doc.get("orders") or {}).values():
            status = str(entry.get("status"))
            counts[status] = counts.get(status, 0) + 1
            # Captured minus refunded, whatever the status: a cancelled paid order was refunded.
            spent += int(entry.get("paidCents") or 0) - int(entry.get("refundedCents") or 0)
        updated = doc.get("updatedAt")
        return {
            "userId": user_id,
            "orders": sum(counts.values()),
            "countsByStatus": counts,
            "spentCents": spent,
            "updatedAt": updated.isoformat() if updated else None,
        }
