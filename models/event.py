"""The event store: every event once (``_id`` = eventId), in store order (``seq``).

Writes are batched (one ``insert_many`` per outbox dispatch, duplicates ignored) because the
Mongo wire server here manages only a few hundred writes a second. ``seq`` is a global
counter (a Mongo document, see ``allocate_seq``) so "everything
after event X" is one indexed range query, which WebSocket resume relies on.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mongoengine import DateTimeField, DictField, Document, IntField, StringField
from pymongo import MongoClient, ReturnDocument
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError

from core.bus import publish_events, to_jsonable
from core.redis_client import make_redis
from core.settings import get_settings
from workflows.events import EventType, make_event

COUNTERS = "counters"
SEQ_COUNTER = "events.seq"
DUPLICATE_KEY = 11000
PUBLIC_FIELDS = (
    "type",
    "aggregateType",
    "aggregateId",
    "aggregateVersion",
    "correlationId",
    "causationId",
    "occurredAt",
    "userId",
    "data",
)


def now_utc() -> datetime:
    return datetime.now(UTC)


class EventRecord(Document):
    """One stored event; field names on disk are the envelope's camelCase keys."""

    meta = {
        "collection": "events",
        # Each index costs the embedded Mongo a lot per insert: these serve the queries we
        # run (resume, timelines, correlation chains, per-user and per-type listings).
        "indexes": [
            {"fields": ["seq"]},
            {"fields": ["user_id", "seq"]},
            {"fields": ["aggregate_id", "seq"]},
            {"fields": ["correlation_id", "seq"]},
            {"fields": ["type", "seq"]},
        ],
    }

    event_id = StringField(primary_key=True)
    type = StringField(required=True)
    aggregate_type = StringField(db_field="aggregateType")
    aggregate_id = StringField(db_field="aggregateId", required=True)
    aggregate_version = IntField(db_field="aggregateVersion")
    correlation_id = StringField(db_field="correlationId", null=True)
    causation_id = StringField(db_field="causationId", null=True)
    occurred_at = DateTimeField(db_field="occurredAt", required=True)
    user_id = StringField(db_field="userId", null=True)
    data = DictField(db_field="data")
    stored_at = DateTimeField(db_field="storedAt")
    seq = IntField(db_field="seq")


def events_collection() -> Collection:
    return EventRecord._get_collection()


def public_event(doc: dict[str, Any]) -> dict[str, Any]:
    """A stored document (or an envelope) as the camelCase, JSON-ready dict clients see."""
    body = {"eventId": doc.get("_id") or doc.get("eventId")}
    body.update({name: doc.get(name) for name in PUBLIC_FIELDS})
    body["data"] = body["data"] or {}
    return to_jsonable(body)


def bus_message(doc: dict[str, Any]) -> dict[str, Any]:
    """What goes on the bus: the public event plus its store position for resume."""
    return {**public_event(doc), "seq": doc.get("seq")}


# -- writing ----------------------------------------------------------------------------------


def _max_stored_seq(coll: Collection) -> int:
    last = coll.find_one({"seq": {"$type": "number"}}, {"seq": 1}, sort=[("seq", -1)])
    return int(last["seq"]) if last else 0


def seed_seq_counter(db: Any) -> None:
    """Make the counter at least the highest stored ``seq`` (idempotent, atomic ``$max``)."""
    stored = _max_stored_seq(db[EventRecord._get_collection_name()])
    db[COUNTERS].update_one({"_id": SEQ_COUNTER}, {"$max": {"value": stored}}, upsert=True)


def allocate_seq(count: int, coll: Collection) -> int:
    """Reserve ``count`` consecutive positions; returns the first one.

    The counter is a Mongo document (``$inc`` on a one-document collection), not Redis: a
    Redis that loses a write (a restart, a failover to a lagging replica) would hand out
    numbers again, and a number lower than one already stored is an event that every
    WebSocket resuming "after seq N" skips. Mongo is the store the events go to, so the
    counter is exactly as durable as they are. A missing counter is first seeded from the
    store (``$max``), never created by ``$inc`` from zero.
    """
    counters = coll.database[COUNTERS]
    for _ in range(2):
        doc = counters.find_one_and_update(
            {"_id": SEQ_COUNTER},
            {"$inc": {"value": count}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is not None:
            return int(doc["value"]) - count + 1
        seed_seq_counter(coll.database)
    raise RuntimeError("the event sequence counter could not be created")


def _stored_doc(event: dict[str, Any], seq: int, at: datetime) -> dict[str, Any]:
    doc = {"_id": event["eventId"], **{k: event.get(k) for k in PUBLIC_FIELDS}}
    doc["data"] = doc["data"] or {}
    doc["storedAt"] = at
    doc["seq"] = seq
    return doc


def store_events(
    events: list[dict[str, Any]],
    *,
    coll: Collection | None = None,
) -> list[dict[str, Any]]:
    """Insert envelopes not stored yet (one batch); return all of them as stored, in order.

    An event already in the store keeps its first record (and its ``seq``): a second
    dispatch after a crash republishes exactly what the first stored.
    """
    if not events:
        return []
    coll = coll if coll is not None else events_collection()
    first = allocate_seq(len(events), coll)
    at = now_utc()
    docs = [_stored_doc(e, first + i, at) for i, e in enumerate(events)]
    duplicates: set[str] = set()
    try:
        coll.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(err.get("code") != DUPLICATE_KEY for err in errors):
            raise
        duplicates = {docs[err["index"]]["_id"] for err in errors}
    if duplicates:
        earlier = {d["_id"]: d for d in coll.find({"_id": {"$in": sorted(duplicates)}})}
        docs = [earlier.get(d["_id"], d) if d["_id"] in duplicates else d for d in docs]
    return docs


def system_event(
    event_type: EventType, source: str, data: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A ``system.*`` envelope about this process (it has no aggregate outbox)."""
    return make_event(
        event_type,
        aggregate_id=source,
        aggregate_version=0,
        correlation_id=None,
        data={"host": socket.gethostname(), "pid": os.getpid(), **(data or {})},
    )


def record_and_publish(events: list[dict[str, Any]], *, standalone: bool = False) -> int:
    """Store then publish events that bypass an outbox (system events); returns the count.

    ``standalone`` uses short-lived clients: a Celery parent process must not keep a
    pymongo client across the fork of its pool.
    """
    if not standalone:
        return publish_events(bus_message(d) for d in store_events(events))
    settings = get_settings()
    mongo: MongoClient = MongoClient(
        settings.mongodb_url,
        serverSelectionTimeoutMS=settings.mongodb_server_selection_ms,
        tz_aware=True,
    )
    r = make_redis(settings.redis_url, decode_responses=False)
    try:
        coll = mongo.get_default_database()["events"]
        docs = store_events(events, coll=coll)
        return publish_events((bus_message(d) for d in docs), client=r)
    finally:
        mongo.close()
        r.close()


def announce(
    event_type: EventType,
    source: str,
    data: dict[str, Any] | None = None,
    *,
    standalone: bool = False,
) -> bool:
    """Store and publish one system event; False instead of raising when Mongo or Redis is down."""
    try:
        record_and_publish([system_event(event_type, source, data)], standalone=standalone)
    except Exception:  # announcing startup/shutdown must never stop a process
        return False
    return True


# -- reading ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventFilter:
    """The filters shared by the list, replay and the CLI; ``type`` may end in ``.*``."""

    type: str | None = None
    aggregate_id: str | None = None
    correlation_id: str | None = None
    user_id: str | None = None
    occurred_from: datetime | None = None
    occurred_to: datetime | None = None
    # Types never listed (a customer's view leaves out operations' events); not a filter
    # of its own, so not part of ``to_json``/``is_empty``.
    exclude_types: frozenset[str] = frozenset()

    def is_empty(self) -> bool:
        return not any(
            (
                self.type,
                self.aggregate_id,
                self.correlation_id,
                self.user_id,
                self.occurred_from,
                self.occurred_to,
            )
        )

    def to_json(self) -> dict[str, Any]:
        """The filter as task kwargs (camelCase, ISO times), read back by :meth:`from_json`."""
        raw = {
            "type": self.type,
            "aggregateId": self.aggregate_id,
            "correlationId": self.correlation_id,
            "userId": self.user_id,
            "from": self.occurred_from,
            "to": self.occurred_to,
        }
        return {k: to_jsonable(v) for k, v in raw.items() if v}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> EventFilter:
        def moment(value: Any) -> datetime | None:
            if not value:
                return None
            parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

        return cls(
            type=raw.get("type"),
            aggregate_id=raw.get("aggregateId"),
            correlation_id=raw.get("correlationId"),
            user_id=raw.get("userId"),
            occurred_from=moment(raw.get("from")),
            occurred_to=moment(raw.get("to")),
        )

    def query(self) -> dict[str, Any]:
        q: dict[str, Any] = {}
        if self.type:
            if self.type.endswith(".*"):
                q["type"] = {"$regex": "^" + self.type[:-2].replace(".", r"\.") + r"\."}
            else:
                q["type"] = self.type
        if self.aggregate_id:
            q["aggregateId"] = self.aggregate_id
        if self.correlation_id:
            q["correlationId"] = self.correlation_id
        if self.user_id:
            q["userId"] = self.user_id
        span: dict[str, datetime] = {}
        if self.occurred_from:
            span["$gte"] = self.occurred_from
        if self.occurred_to:
            span["$lte"] = self.occurred_to
        if span:
            q["occurredAt"] = span
        if self.exclude_types:
            hidden = {"type": {"$nin": sorted(self.exclude_types)}}
            q = {"$and": [q, hidden]} if "type" in q else {**q, **hidden}
        return q


def find_events(flt: EventFilter, *, page: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    """A page of matching events, newest stored first, and the total match count."""
    coll = events_collection()
    query = flt.query()
    total = coll.count_documents(query)
    cursor = (coll.find(query).sort("seq", -1).skip((page - 1) * limit)).limit(limit)
    return [public_event(d) for d in cursor], total


def iter_matching(flt: EventFilter, batch: int = 500) -> Iterable[dict[str, Any]]:
    """Every matching stored document in store order, fetched in batches by ``seq``."""
    coll = events_collection()
    after = 0
    while True:
        query = {**flt.query(), "seq": {"$gt": after}}
        docs = list(coll.find(query).sort("seq", 1).limit(batch))
        yield from docs
        if len(docs) < batch:
            return
        after = int(docs[-1]["seq"])


def count_matching(flt: EventFilter) -> int:
    return events_collection().count_documents(flt.query())


def get_event(event_id: str) -> dict[str, Any] | None:
    return events_collection().find_one({"_id": event_id})


def seq_of(event_id: str) -> int | None:
    doc = events_collection().find_one({"_id": event_id}, {"seq": 1})
    return int(doc["seq"]) if doc and doc.get("seq") is not None else None


def latest_seq() -> int:
    return _max_stored_seq(events_collection())


def events_after(seq: int, user_id: str | None, limit: int = 500) -> list[dict[str, Any]]:
    """Stored documents after position ``seq`` (a user's own only, unless None), oldest first."""
    query: dict[str, Any] = {"seq": {"$gt": seq}}
    if user_id is not None:
        query["userId"] = user_id
    return list(events_collection().find(query).sort("seq", 1).limit(limit))


def _with_links(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    types = {d["_id"]: d.get("type") for d in docs}
    out = []
    for doc in docs:
        event = public_event(doc)
        # The cause's type, when the cause is in the same listing, saves a lookup per row.
        event["causationType"] = types.get(doc.get("causationId"))
        out.append(event)
    return out


def timeline_for(aggregate_id: str) -> list[dict[str, Any]]:
    """Every stored event of one aggregate (an order id), oldest first, with causation links."""
    docs = list(events_collection().find({"aggregateId": aggregate_id}).sort("seq", 1))
    return _with_links(docs)


def correlation_chain(correlation_id: str, user_id: str | None = None) -> list[dict[str, Any]]:
    """Every event of one correlation id (a user's own only, unless None), oldest first."""
    query: dict[str, Any] = {"correlationId": correlation_id}
    if user_id is not None:
        query["userId"] = user_id
    return _with_links(list(events_collection().find(query).sort("seq", 1)))


# -- statistics -------------------------------------------------------------------------------


def counts_by_type(flt: EventFilter | None = None) -> dict[str, int]:
    pipeline: list[dict[str, Any]] = [{"$group": {"_id": "$type", "n": {"$sum": 1}}}]
    if flt is not None and not flt.is_empty():
        pipeline.insert(0, {"$match": flt.query()})
    rows = events_collection().aggregate(pipeline)
    return {str(r["_id"]): int(r["n"]) for r in rows if r["_id"]}


def counts_by_hour(hours: int = 24) -> dict[str, int]:
    since = now_utc() - timedelta(hours=hours)
    hour = {"$dateToString": {"format": "%Y-%m-%dT%H:00:00Z", "date": "$occurredAt"}}
    rows = events_collection().aggregate(
        [{"$match": {"occurredAt": {"$gte": since}}}, {"$group": {"_id": hour, "n": {"$sum": 1}}}]
    )
    return dict(sorted((str(r["_id"]), int(r["n"])) for r in rows))
