"""The API's only door into Celery: enqueue work and probe the broker and workers."""

from __future__ import annotations

from tasks.app import celery_app


def broker_ping(timeout_s: float) -> None:
    """Open a broker connection and a channel within timeout_s, or raise."""
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=timeout_s)
        _ = conn.default_channel


def workers_ping(
    timeout_s: float, destination: list[str] | None = None, limit: int | None = None
) -> int:
    """Number of workers that answered a broadcast ping within timeout_s.

    With ``limit`` the call returns as soon as that many replied instead of waiting.
    """
    replies = celery_app.control.ping(timeout=timeout_s, destination=destination, limit=limit)
    return len(replies or [])


def enqueue_outbox(kind: str, aggregate_id: str) -> None:
    """Ask a worker to move an aggregate's outbox events to the store and the bus.

    kind is "orders", "products" or "users". Beat sweeps outboxes too, so a lost
    message here delays events but never loses them.
    """
    celery_app.send_task(
        "events.dispatch_outbox", kwargs={"kind": kind, "aggregate_id": aggregate_id}
    )
