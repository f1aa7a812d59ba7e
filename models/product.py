"""Catalog products and their stock, moved only by single-document atomic updates.

Invariant, checkable at any time: stocked_total + returned == available + sum(holds) + sold
(``sold`` counts every unit shipped; ``returned`` every unit that came back and is on sale).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mongoengine import DateTimeField, DictField, Document, IntField, ListField, StringField
from pymongo import ReturnDocument

from core.context import correlation_id_var
from workflows.events import EventType, make_event


def _now() -> datetime:
    return datetime.now(UTC)


class Product(Document):
    meta = {
        "collection": "products",
        "indexes": ["name", "available", "updated_at"],
    }

    sku = StringField(primary_key=True, regex=r"^[A-Z0-9][A-Z0-9\-]{1,39}$")
    name = StringField(required=True, max_length=200)
    description = StringField(max_length=2000, default="")
    price_cents = IntField(required=True, min_value=0)
    currency = StringField(required=True, max_length=3)
    available = IntField(required=True, min_value=0, default=0)
    sold = IntField(required=True, min_value=0, default=0)
    holds = DictField(default=dict)  # order id -> quantity held
    stocked_total = IntField(required=True, min_value=0, default=0)
    returned = IntField(min_value=0, default=0)
    returns_in = DictField(default=dict)  # return id -> units restocked by it (once each)
    low_stock_threshold = IntField(min_value=0, default=5)
    version = IntField(default=1)
    outbox = ListField(DictField(), default=list)
    created_at = DateTimeField(default=_now)
    updated_at = DateTimeField(default=_now)

    # -- events -------------------------------------------------------------------------
    @staticmethod
    def _event(kind: EventType, sku: str, version: int, data: dict[str, Any]) -> dict[str, Any]:
        return make_event(
            kind,
            aggregate_id=sku,
            aggregate_version=version,
            correlation_id=correlation_id_var.get(),
            data={"sku": sku, **data},
        )

    def to_public(self) -> dict[str, Any]:
        return {
            "sku": self.sku,
            "name": self.name,
            "description": self.description,
            "priceCents": self.price_cents,
            "currency": self.currency,
            "available": self.available,
            "lowStock": self.available < (self.low_stock_threshold or 0),
        }

    def to_admin(self) -> dict[str, Any]:
        return {
            **self.to_public(),
            "sold": self.sold,
            "held": sum(int(q) for q in (self.holds or {}).values()),
            "stockedTotal": self.stocked_total,
            "returned": self.returned or 0,
            "lowStockThreshold": self.low_stock_threshold,
            "updatedAt": self.updated_at.isoformat() if self.updated_at else None,
        }

    # -- creation and restock -------------------------------------------------------------
    @classmethod
    def create(
        cls,
        *,
        sku: str,
        name: str,
        price_cents: int,
        currency: str,
        stock: int,
        description: str = "",
        low_stock_threshold: int = 5,
    ) -> Product:
        product = cls(
            sku=sku,
            name=name,
            description=description,
            price_cents=price_cents,
            currency=currency.lower(),
            available=stock,
            stocked_total=stock,
            low_stock_threshold=low_stock_threshold,
            version=1,
        )
        product.outbox = [
            cls._event(EventType.INVENTORY_UPDATED, sku, 1, {"available": stock, "delta": stock})
        ]
        product.save(force_insert=True)
        return product

    @classmethod
    def restock(cls, sku: str, quantity: int) -> Product | None:
        """Add stock: available and stocked_total rise together in one update."""
        coll = cls._get_collection()
        current = coll.find_one({"_id": sku}, {"version": 1})
        if current is None:
            return None
        version = int(current.get("version", 1)) + 1
        event = cls._event(EventType.INVENTORY_UPDATED, sku, version, {"delta": quantity})
        doc = coll.find_one_and_update(
            {"_id": sku},
            {
                "$inc": {"available": quantity, "stocked_total": quantity, "version": 1},
                "$set": {"updated_at": _now()},
                "$push": {"outbox": event},
            },
            return_document=ReturnDocument.AFTER,
        )
        return cls._from_son(doc) if doc else None

    # -- holds ----------------------------------------------------------------------------
    @classmethod
    def reserve(cls, sku: str, order_id: str, quantity: int) -> tuple[bool, bool]:
        """Hold stock for an order: (held now or already, crossed a stock threshold now).

        One conditional update: enough available and no hold yet for this order, so two
        runs of the same step never hold twice and concurrent orders never oversell.
        """
        coll = cls._get_collection()
        doc = coll.find_one_and_update(
            {"_id": sku, "available": {"$gte": quantity}, f"holds.{order_id}": {"$exists": False}},
            {
                "$inc": {"available": -quantity, "version": 1},
                "$set": {f"holds.{order_id}": quantity, "updated_at": _now()},
            },
            projection={"available": 1, "low_stock_threshold": 1, "version": 1},
            return_document=ReturnDocument.AFTER,
        )
        if doc is not None:
            return True, cls._stock_crossing_events(sku, doc, quantity)
        held = coll.count_documents({"_id": sku, f"holds.{order_id}": {"$exists": True}}) > 0
        return held, False

    @classmethod
    def _stock_crossing_events(cls, sku: str, doc: dict[str, Any], quantity: int) -> bool:
        # Exactly one reservation crosses each threshold, since $inc is atomic.
        after = int(doc["available"])
        before = after + quantity
        threshold = int(doc.get("low_stock_threshold") or 0)
        kinds: list[EventType] = []
        if after == 0 < before:
            kinds.append(EventType.INVENTORY_OUT_OF_STOCK)
        elif after < threshold <= before:
            kinds.append(EventType.INVENTORY_LOW_STOCK)
        if not kinds:
            return False
        version = int(doc.get("version", 1))
        events = [
            cls._event(kind, sku, version, {"available": after, "threshold": threshold})
            for kind in kinds
        ]
        cls._get_collection().update_one({"_id": sku}, {"$push": {"outbox": {"$each": events}}})
        return True

    @classmethod
    def _settle_hold(cls, sku: str, order_id: str, quantity: int, into: str) -> bool:
        # Only a hold that is present moves, so running this twice moves it once.
        result = cls._get_collection().update_one(
            {"_id": sku, f"holds.{order_id}": quantity},
            {
                "$inc": {into: quantity, "version": 1},
                "$unset": {f"holds.{order_id}": ""},
                "$set": {"updated_at": _now()},
            },
        )
        return result.modified_count == 1

    @classmethod
    def release(cls, sku: str, order_id: str, quantity: int) -> bool:
        """Give a hold back to available. True if a hold was released by this call."""
        return cls._settle_hold(sku, order_id, quantity, "available")

    @classmethod
    def commit(cls, sku: str, order_id: str, quantity: int) -> bool:
        """Turn a hold into sold stock (at shipping). True if committed by this call."""
        return cls._settle_hold(sku, order_id, quantity, "sold")

    @classmethod
    def restock_return(cls, sku: str, return_id: str, quantity: int) -> bool:
        """Put returned units back on sale, once per return. True if this call did it."""
        result = cls._get_collection().update_one(
            {"_id": sku, f"returns_in.{return_id}": {"$exists": False}},
            {
                "$inc": {"available": quantity, "returned": quantity, "version": 1},
                "$set": {f"returns_in.{return_id}": quantity, "updated_at": _now()},
            },
        )
        return result.modified_count == 1

    @classmethod
    def skus_holding(cls, order_id: str) -> list[str]:
        return [
            d["_id"]
            for d in cls._get_collection().find(
                {f"holds.{order_id}": {"$exists": True}}, {"_id": 1}
            )
        ]

    @classmethod
    def conservation_violations(cls) -> list[dict[str, Any]]:
        """Products where stocked_total + returned != available + held + sold."""
        bad = []
        for doc in cls._get_collection().find(
            {}, {"available": 1, "sold": 1, "holds": 1, "stocked_total": 1, "returned": 1}
        ):
            held = sum(int(q) for q in (doc.get("holds") or {}).values())
            total = int(doc.get("available", 0)) + held + int(doc.get("sold", 0))
            stocked = int(doc.get("stocked_total", 0)) + int(doc.get("returned") or 0)
            if total != stocked or int(doc.get("available", 0)) < 0:
                bad.append(
                    {
                        "sku": doc["_id"],
                        "stockedTotal": doc.get("stocked_total"),
                        "available": doc.get("available"),
                        "held": held,
                        "sold": doc.get("sold"),
                        "returned": int(doc.get("returned") or 0),
                    }
                )
        return bad
