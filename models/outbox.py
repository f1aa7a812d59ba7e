"""Outboxes as a whole: the index the sweep relies on, and how far behind dispatch is."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo.errors import OperationFailure

# The collections whose documents carry an ``outbox`` of event envelopes.
OUTBOX_KINDS = ("orders", "products", "users")


def _now() -> datetime:
    return datetime.now(UTC)


_outbox_indexed: set[str] = set()
OUTBOX_INDEX = [("outbox.occurredAt", 1)]


def _models() -> dict[str, Any]:
    from models.order import Order
    from models.product import Product
    from models.user import User

    return {"orders": Order, "products": Product, "users": User}


def ensure_outbox_indexes(db: Any) -> None:
    """Index ``outbox.occurredAt`` (sparse) on every outbox collection, once per process.

    The sweep and the lag figures are then range scans, not full scans. Where a model
    declares the index, mongoengine creates it (the embedded Mongo calls the same index
    sent with other options a conflict, so only one side may create it).
    """
    if db.name in _outbox_indexed:
        return
    for kind, model in _models().items():
        declared = any(spec["fields"] == OUTBOX_INDEX for spec in model._meta["index_specs"])
        if declared:
            model._get_collection()  # mongoengine ensures its declared indexes here
            continue
        if any(info["key"] == OUTBOX_INDEX for info in db[kind].index_information().values()):
            continue
        try:
            db[kind].create_index(OUTBOX_INDEX, sparse=True, background=False)
        except OperationFailure:
            continue
    _outbox_indexed.add(db.name)


def outbox_lag(db: Any) -> dict[str, Any]:
    """Events waiting in outboxes: how many, per kind, and the age of the oldest (seconds)."""
    ensure_outbox_indexes(db)
    pending: dict[str, int] = {}
    oldest: datetime | None = None
    for kind in OUTBOX_KINDS:
        count = 0
        for doc in db[kind].find({"outbox.occurredAt": {"$exists": True}}, {"outbox": 1}):
            for event in doc.get("outbox") or []:
                count += 1
                at = event.get("occurredAt")
                if isinstance(at, datetime):
                    at = at if at.tzinfo else at.replace(tzinfo=UTC)
                    oldest = at if oldest is None or at < oldest else oldest
        pending[kind] = count
    age = (_now() - oldest).total_seconds() if oldest else 0.0
    return {"pending": sum(pending.values()), "byKind": pending, "oldestAgeSeconds": round(age, 3)}
