"""Orders: the source of truth of every lifecycle, moved by compare-and-set updates.

``Order.transition`` matches on status *and* version, bumps the version, appends to the
history and pushes the transition's events into the outbox — all in one update.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from mongoengine import (
    BooleanField,
    DateTimeField,
    DictField,
    Document,
    IntField,
    ListField,
    StringField,
)

from core.context import correlation_id_var
from workflows.events import EventType, chain_causation, make_event, transition_events
from workflows.states import OrderStatus, ensure_transition


def now_utc() -> datetime:
    return datetime.now(UTC)


def new_order_number(at: datetime) -> str:
    # Date + random suffix: unique index backs it; no global counter to contend on.
    return f"ORD-{at:%Y%m%d}-{secrets.randbelow(10**8):08d}"


def parse_order_id(value: str) -> ObjectId | None:
    try:
        return ObjectId(value)
    except (InvalidId, TypeError):
        return None


# Called after each status move as (from, to, seconds spent in from, reason); monitoring
# registers its metrics here (models sit below monitoring, so it cannot be imported).
_TRANSITION_OBSERVERS: list[Callable[[OrderStatus, OrderStatus, float, str], None]] = []


def add_transition_observer(fn: Callable[[OrderStatus, OrderStatus, float, str], None]) -> None:
    if fn not in _TRANSITION_OBSERVERS:
        _TRANSITION_OBSERVERS.append(fn)


def _entered_at(order: Order) -> datetime | None:
    """When the order entered its current status (the first of the trailing history
    entries in that status; field edits add entries without changing it)."""
    at = None
    for entry in reversed(order.history or []):
        if entry.get("status") != order.status:
            break
        at = entry.get("at")
    return at or order.created_at


def _notify_transition(order: Order, to: OrderStatus, at: datetime, reason: str | None) -> None:
    entered = _entered_at(order)
    seconds = 0.0
    if isinstance(entered, datetime):
        seconds = (at.replace(tzinfo=None) - entered.replace(tzinfo=None)).total_seconds()
    for fn in _TRANSITION_OBSERVERS:
        with suppress(Exception):  # metrics never break a state change
            fn(order.status_enum, to, seconds, reason or "")


class Order(Document):
    meta = {
        "collection": "orders",
        "indexes": [
            {"fields": ["user_id", "-created_at"]},
            {"fields": ["status", "updated_at"]},
            {"fields": ["-created_at"]},
            "correlation_id",
            "payment_intent_id",
            "needs_attention",
            "user_email",
            "dispute_status",
            {"fields": ["order_number"], "unique": True},
            {
                "fields": ["user_id", "idempotency_key"],
                "unique": True,
                "partialFilterExpression": {"idempotency_key": {"$type": "string"}},
            },
        ],
    }

    order_number = StringField(required=True)
    user_id = StringField(required=True)
    user_email = StringField(required=True)
    items = ListField(DictField(), required=True)
    subtotal_cents = IntField(required=True, min_value=0)
    tax_cents = IntField(required=True, min_value=0)
    shipping_cents = IntField(required=True, min_value=0)
    total_cents = IntField(required=True, min_value=0)
    currency = StringField(required=True, max_length=3)
    shipping_address_enc = StringField(required=True)
    notes = StringField(max_length=500, default="")
    status = StringField(required=True, default=OrderStatus.PENDING.value)
    status_reason = StringField(default=None, null=True)
    version = IntField(required=True, default=1)
    history = ListField(DictField(), default=list)
    correlation_id = StringField(required=True)
    # W3C traceparent of the request that placed the order (None with tracing off)
    trace_parent = StringField(default=None, null=True)
    payment_method_id = StringField(default=None, null=True)
    payment_intent_id = StringField(default=None, null=True)
    client_secret = StringField(default=None, null=True)
    next_action = StringField(default=None, null=True)
    paid_cents = IntField(default=0)
    # Manual capture: what the card authorization holds and since when (0/None: none).
    authorized_cents = IntField(default=0)
    authorized_at = DateTimeField(default=None, null=True)
    refunded_cents = IntField(default=0)
    refunds = ListField(DictField(), default=list)
    returns = ListField(DictField(), default=list)  # see models/order_returns.py
    # Disputes Stripe reported, by dispute id; dispute_status is the latest one's status.
    disputes = DictField(default=dict)
    dispute_status = StringField(default=None, null=True)
    # POST /api/payments/refund requests made with an Idempotency-Key (key, body hash, answer).
    refund_requests = ListField(DictField(), default=list)
    carrier = StringField(default=None, null=True)
    tracking_number = StringField(default=None, null=True)
    estimated_delivery = DateTimeField(default=None, null=True)
    shipped_at = DateTimeField(default=None, null=True)
    delivered_at = DateTimeField(default=None, null=True)
    needs_attention = BooleanField(default=False)
    attention_reason = StringField(default=None, null=True)
    resume_count = IntField(default=0)
    idempotency_key = StringField(default=None, null=True)
    request_hash = StringField(default=None, null=True)
    outbox = ListField(DictField(), default=list)
    last_event_id = StringField(default=None, null=True)
    created_at = DateTimeField(default=now_utc)
    updated_at = DateTimeField(default=now_utc)

    @property
    def status_enum(self) -> OrderStatus:
        return OrderStatus(self.status)

    # -- loading ----------------------------------------------------------------------
    @classmethod
    def get(cls, order_id: str) -> Order | None:
        oid = parse_order_id(order_id)
        return cls.objects(id=oid).first() if oid else None

    # -- events -----------------------------------------------------------------------
    def make_events(
        self,
        kinds: tuple[EventType, ...] | list[EventType],
        version: int,
        data: dict[str, Any],
        causation_id: str | None = None,
    ) -> list[dict[str, Any]]:
        events = [
            make_event(
                kind,
                aggregate_id=str(self.id),
                aggregate_version=version,
                correlation_id=self.correlation_id or correlation_id_var.get(),
                user_id=self.user_id,
                data={"orderNumber": self.order_number, **data},
            )
            for kind in kinds
        ]
        return chain_causation(events, causation_id)

    # -- compare-and-set --------------------------------------------------------------
    @classmethod
    def _compare_and_set(
        cls, match: dict[str, Any], update: dict[str, Any], version: int
    ) -> Order | None:
        """Apply ``update`` where ``match`` (which pins the version) holds; the order after.

        ``update_one`` + a read of the exact new version rather than ``findAndModify``:
        SecantusDB's findAndModify costs in proportion to the collection's size. Only
        this write can have produced ``version``, so reading it back is exact; if a later
        write already moved past it, the newest state is returned instead.
        """
        coll = cls._get_collection()
        if coll.update_one(match, update).modified_count != 1:
            return None
        doc = coll.find_one({"_id": match["_id"], "version": version}) or coll.find_one(
            {"_id": match["_id"]}
        )
        return cls._from_son(doc) if doc else None

    @classmethod
    def transition(
        cls,
        order: Order,
        to: OrderStatus,
        *,
        actor: str,
        reason: str | None = None,
        fields: dict[str, Any] | None = None,
        inc: dict[str, int] | None = None,
        extra_events: tuple[EventType, ...] = (),
        event_data: dict[str, Any] | None = None,
        causation_id: str | None = None,
        match: dict[str, Any] | None = None,
    ) -> Order | None:
        """Move ``order`` from its loaded status/version to ``to``; None if it moved meanwhile.

        ``match`` adds conditions to the compare-and-set (e.g. no intent stored yet). The
        caller re-reads on None and decides whether that is a no-op or a conflict.
        """
        frm = order.status_enum
        ensure_transition(frm, to)
        at = now_utc()
        version = order.version + 1
        data = {"from": frm.value, "to": to.value, "reason": reason, "actor": actor}
        data.update(event_data or {})
        kinds = (*extra_events, *transition_events(frm, to))
        # The previous move caused this one, unless the caller names another cause.
        events = order.make_events(kinds, version, data, causation_id or order.last_event_id)
        entry = {"status": to.value, "at": at, "reason": reason, "actor": actor}
        update: dict[str, Any] = {
            "$set": {
                "status": to.value,
                "status_reason": reason,
                "updated_at": at,
                "last_event_id": events[-1]["eventId"],
                **(fields or {}),
            },
            "$inc": {"version": 1, **(inc or {})},
            "$push": {"history": entry, "outbox": {"$each": events}},
        }
        moved = cls._compare_and_set(
            {"_id": order.id, "status": frm.value, "version": order.version, **(match or {})},
            update,
            version,
        )
        if moved is not None:
            _notify_transition(order, to, at, reason)
        return moved

    @classmethod
    def transition_from(
        cls,
        order_id: str,
        expected: frozenset[OrderStatus],
        to: OrderStatus,
        *,
        loaded: Order | None = None,
        **kwargs: Any,
    ) -> Order | None:
        """``transition`` that re-reads and retries when only the version moved meanwhile
        (an address edit, say); gives up once the status left ``expected``. ``loaded``, the
        order as the caller just read it, is tried first (saves a read)."""
        order = loaded
        for _ in range(5):
            if order is None:
                order = cls.get(order_id)
            if order is None or order.status_enum not in expected:
                return None
            moved = cls.transition(order, to, **kwargs)
            if moved is not None:
                return moved
            order = None
        return None

    @classmethod
    def update_fields(
        cls,
        order: Order,
        *,
        actor: str,
        fields: dict[str, Any],
        events: tuple[EventType, ...] = (EventType.ORDER_UPDATED,),
        event_data: dict[str, Any] | None = None,
        note: str | None = None,
        unset_if: dict[str, Any] | None = None,
    ) -> Order | None:
        """CAS update of non-status fields (same status and version), with events + history."""
        at = now_utc()
        version = order.version + 1
        data = {"actor": actor, "changed": sorted(k for k in fields if not k.endswith("_enc"))}
        data.update(event_data or {})
        evs = order.make_events(events, version, data) if events else []
        push: dict[str, Any] = {"outbox": {"$each": evs}}
        if note:
            push["history"] = {"status": order.status, "at": at, "reason": note, "actor": actor}
        return cls._compare_and_set(
            {"_id": order.id, "status": order.status, "version": order.version, **(unset_if or {})},
            {"$set": {**fields, "updated_at": at}, "$inc": {"version": 1}, "$push": push},
            version,
        )

    @classmethod
    def flag_attention(cls, order_id: str, reason: str, actor: str) -> bool:
        """Mark an order for an operator, once, with a needs_attention event."""
        order = cls.get(order_id)
        if order is None or order.needs_attention:
            return False
        version = order.version + 1
        events = order.make_events(
            (EventType.ORDER_NEEDS_ATTENTION,), version, {"reason": reason, "actor": actor}
        )
        result = cls._get_collection().update_one(
            {"_id": order.id, "needs_attention": {"$ne": True}},
            {
                "$set": {
                    "needs_attention": True,
                    "attention_reason": reason,
                    "updated_at": now_utc(),
                },
                "$inc": {"version": 1},
                "$push": {
                    "outbox": {"$each": events},
                    "history": {
                        "status": order.status,
                        "at": now_utc(),
                        "reason": f"needs attention: {reason}",
                        "actor": actor,
                    },
                },
            },
        )
        return result.modified_count == 1

    @classmethod
    def clear_attention(cls, order_id: str) -> None:
        oid = parse_order_id(order_id)
        cls._get_collection().update_one(
            {"_id": oid},
            {"$set": {"needs_attention": False, "attention_reason": None, "resume_count": 0}},
        )

    @classmethod
    def push_events(cls, order_id: str, kinds: tuple[EventType, ...], data: dict[str, Any]) -> None:
        """Record events that change no state (retries, compensations) in the outbox."""
        order = cls.get(order_id)
        if order is None:
            return
        events = order.make_events(kinds, order.version, data)
        cls._get_collection().update_one(
            {"_id": order.id}, {"$push": {"outbox": {"$each": events}}}
        )

    @classmethod
    def claim_refund_request(cls, order_id: str, record: dict[str, Any]) -> dict[str, Any] | None:
        """Record a keyed refund request once (``record["key"]``, atomically).

        Returns None when this call recorded it (go ahead and refund), else the request
        already recorded under that key (replay its answer, or refuse another body).
        """
        oid = parse_order_id(order_id)
        result = cls._get_collection().update_one(
            {"_id": oid, "refund_requests.key": {"$ne": record["key"]}},
            {"$push": {"refund_requests": record}},
        )
        if result.modified_count == 1:
            return None
        doc = cls._get_collection().find_one({"_id": oid}, {"refund_requests": 1}) or {}
        return next(
            (r for r in doc.get("refund_requests") or [] if r.get("key") == record["key"]), record
        )

    @classmethod
    def forget_refund_request(cls, order_id: str, key: str) -> None:
        """Drop a keyed refund request whose refund could not be queued."""
        cls._get_collection().update_one(
            {"_id": parse_order_id(order_id)}, {"$pull": {"refund_requests": {"key": key}}}
        )
