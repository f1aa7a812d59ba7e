"""Event sequence numbers come from Mongo: they never repeat or go backwards, whatever Redis
forgets (a restart without persistence, a failover to a replica that missed writes)."""

from __future__ import annotations

import threading

from core.db import get_db
from core.redis_client import get_redis
from models.event import COUNTERS, events_collection, store_events
from workflows.events import EventType, make_event


def _events(n: int, agg: str = "ord-seq") -> list[dict]:
    return [
        make_event(
            EventType.ORDER_UPDATED, aggregate_id=agg, aggregate_version=i, correlation_id=None
        )
        for i in range(n)
    ]


def _all_seqs() -> list[int]:
    return [d["seq"] for d in events_collection().find({}, {"seq": 1}).sort("seq", 1)]


def test_redis_losing_the_counter_does_not_reuse_numbers(clean_data) -> None:
    first = [d["seq"] for d in store_events(_events(5))]
    # What a replica that missed the last INCRBYs would answer after a failover, and what a
    # restarted Redis without persistence has: the old code allocated from these.
    r = get_redis()
    r.set("oms:events:seq", 2)
    later = [d["seq"] for d in store_events(_events(3))]
    r.delete("oms:events:seq")
    last = [d["seq"] for d in store_events(_events(2))]
    seqs = first + later + last
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) == 10
    assert min(later) > max(first) and min(last) > max(later)


def test_a_missing_counter_continues_after_the_store(clean_data) -> None:
    store_events(_events(4))
    top = max(_all_seqs())
    get_db()[COUNTERS].delete_many({})  # an old data dir, or a restored dump without it
    again = [d["seq"] for d in store_events(_events(2))]
    assert again == [top + 1, top + 2]


def test_concurrent_writers_get_distinct_increasing_ranges(clean_data) -> None:
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            for j in range(10):
                store_events(_events(3, agg=f"ord-{k}-{j}"))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    seqs = _all_seqs()
    assert len(seqs) == 6 * 10 * 3 and len(set(seqs)) == len(seqs)
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # no gaps, no repeats
