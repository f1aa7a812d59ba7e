"""Bench-only Celery tasks for the baseline: a 4-task chain that does nothing.

Imported by the bench workers with ``-I``; never by the app. The last task of each chain
bumps one Redis counter, so the bench can see chains finish without a result backend.
"""

from __future__ import annotations

from core.redis_client import get_redis
from tasks.app import celery_app

DONE_KEY = "oms:bench:chains_done"


@celery_app.task(name="bench.noop", acks_late=True, ignore_result=True)
def noop(**_: object) -> None:
    return None


@celery_app.task(name="bench.done", acks_late=True, ignore_result=True)
def done(**_: object) -> None:
    get_redis().incr(DONE_KEY)


def send_chains(count: int) -> None:
    """Enqueue ``count`` chains noop | noop | noop | done on the orders queue."""
    from celery import chain

    sig = celery_app.signature
    with celery_app.producer_or_acquire() as producer:
        for _ in range(count):
            chain(
                sig("bench.noop", immutable=True, queue="orders"),
                sig("bench.noop", immutable=True, queue="orders"),
                sig("bench.noop", immutable=True, queue="orders"),
                sig("bench.done", immutable=True, queue="orders"),
            ).apply_async(producer=producer)
