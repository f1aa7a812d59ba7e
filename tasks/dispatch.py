"""The API's only door into Celery: start, resume and cancel orders; probe the broker."""

from __future__ import annotations

from celery import chain

from core.context import correlation_id_var
from tasks.app import celery_app
from workflows.lifecycle import remaining_steps
from workflows.states import OrderStatus

CORRELATION_HEADER = "oms_correlation_id"


def _signature(task_name: str, order_id: str, correlation_id: str):
    # The id travels as a keyword so Flower's search finds an order's tasks.
    return celery_app.signature(
        task_name,
        kwargs={"order_id": order_id},
        immutable=True,
        headers={CORRELATION_HEADER: correlation_id},
    )


def enqueue_chain(order_id: str, correlation_id: str, status: OrderStatus) -> list[str]:
    """Send the chain of the steps still ahead of ``status``; returns their task names."""
    steps = remaining_steps(status)
    if not steps:
        return []
    chain(*[_signature(s.task_name, order_id, correlation_id) for s in steps]).apply_async()
    return [s.task_name for s in steps]


def start(order_id: str, correlation_id: str) -> list[str]:
    """Enqueue a new order's whole chain."""
    return enqueue_chain(order_id, correlation_id, OrderStatus.PENDING)


def resume(order_id: str, *, actor: str = "system") -> list[str]:
    """Rebuild the remaining chain from the order's stored status (idempotent)."""
    from tasks.resume import resume_order

    return resume_order(order_id, actor=actor)


def cancel(order_id: str, reason: str, *, actor: str):
    """Cancel an order before shipping; compensations are enqueued. Returns (order, previous)."""
    from tasks.outcomes import end_order
    from workflows.states import CANCELLABLE

    return end_order(
        order_id, OrderStatus.CANCELLED, reason=reason, actor=actor, allowed_from=CANCELLABLE
    )


def enqueue_task(task_name: str, **kwargs: object) -> None:
    """Send one named task (payments confirm, refunds, webhook processing)."""
    celery_app.send_task(task_name, kwargs=kwargs)


def enqueue_outbox(kind: str, aggregate_id: str) -> None:
    """Ask a worker to move an aggregate's outbox events to the store and the bus.

    kind is "orders", "products" or "users". Beat sweeps outboxes too, so a lost
    message here delays events but never loses them.
    """
    celery_app.send_task(
        "events.dispatch_outbox",
        kwargs={"kind": kind, "aggregate_id": aggregate_id},
        # The request's (or the running task's) id, so the dispatch logs under it too.
        headers={CORRELATION_HEADER: correlation_id_var.get()},
    )


def enqueue_replay(filters: dict[str, object], handlers: list[str] | None = None) -> None:
    """Re-run event handlers for the stored events matching filters (EventFilter.to_json())."""
    celery_app.send_task("events.replay", kwargs={"filters": filters, "handlers": handlers})


def handler_subscriptions() -> dict[str, list[str] | None]:
    """Registered event handler name -> the event types it handles (None: every type)."""
    from tasks.handlers import load_plugins, subscriptions

    load_plugins()
    return subscriptions()


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


def queue_depths(queues: tuple[str, ...] | list[str], timeout_s: float = 2.0) -> dict[str, int]:
    """Messages ready in each queue, on any broker (a passive declare: RabbitMQ's
    ``message_count``, the Redis transport's list lengths over its priority lists). A queue
    that does not exist yet counts 0. Raises if the broker cannot be reached."""
    depths: dict[str, int] = {}
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=timeout_s)
        for name in queues:
            channel = conn.channel()  # a failed passive declare closes its channel on AMQP
            try:
                depths[name] = int(channel.queue_declare(queue=name, passive=True).message_count)
            except conn.channel_errors:
                depths[name] = 0
            finally:
                try:
                    channel.close()
                except Exception:  # noqa: S110 - already closed by the broker
                    pass
    return depths
