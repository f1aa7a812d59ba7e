"""Any pool works: the Stripe-bound payments queue on a threads worker, per-queue workers.

Before tasks/pools.py, Mongo was connected only in ``worker_process_init`` (prefork
children), so every task on a threads pool failed with
``ConnectionFailure('You have not defined a default connection')``.
"""

from __future__ import annotations

import os
import signal
import time
import uuid

import pytest

from devstack.processes import WORKER_LAYOUT
from tasks.pools import EXIT_HARD_TIME_LIMIT
from tests.conftest import Worker
from tests.factories import customer_with_card, place_order, wait_status


def test_layout_isolates_payments_on_a_threads_pool() -> None:
    by_queue = {q: spec for spec in WORKER_LAYOUT for q in spec.queues.split(",")}
    assert set(by_queue) == {"orders", "payments", "events", "maintenance", "webhooks"}
    assert by_queue["payments"].pool == "threads"
    assert by_queue["payments"].queues == "payments"  # nothing else shares its slots
    assert by_queue["orders"] is not by_queue["payments"]


@pytest.fixture
def threads_payments_worker(worker):
    """The session worker stops consuming `payments`; a threads-pool worker takes it."""
    from tasks.app import celery_app

    celery_app.control.cancel_consumer("payments", destination=[worker.name], reply=True)
    threads = Worker(f"worker-threads-{uuid.uuid4().hex[:6]}", 8, queues="payments", pool="threads")
    try:
        yield threads.start()
    finally:
        threads.stop()
        celery_app.control.add_consumer("payments", destination=[worker.name], reply=True)


def test_chain_completes_with_payments_on_a_threads_worker(client, threads_payments_worker):
    customer, pm = customer_with_card(client, "SKU-THREADS", stock=5)
    ids = []
    for _ in range(3):
        r = place_order(client, customer["token"], [("SKU-THREADS", 1)], pm)
        assert r.status_code == 202, r.text
        ids.append(r.json()["data"]["order"]["id"])
    for oid in ids:
        done = wait_status(client, customer["token"], oid, {"shipped", "failed"}, timeout=60)
        assert done["status"] == "shipped", done.get("statusReason")
    log = threads_payments_worker.log()
    assert "ConnectionFailure" not in log and "default connection" not in log
    assert '"pool": "threads"' in log  # tasks.pools connected it at worker init
    for oid in ids:
        ran = [ln for ln in log.splitlines() if oid in ln and '"task_name": "payments.' in ln]
        names = {ln.split('"task_name": "')[1].split('"')[0] for ln in ran}
        assert {"payments.create_payment_intent", "payments.confirm_payment"} <= names, oid


def test_threads_pool_enforces_the_hard_time_limit_by_exiting(services) -> None:
    """Celery cannot kill a thread: a task past task_time_limit makes the worker exit (its
    acks-late message goes back to the broker), as prefork would kill the child."""
    from tasks.app import celery_app

    queue = f"slow-{uuid.uuid4().hex[:8]}"
    w = Worker(
        f"worker-slow-{queue}",
        2,
        queues=queue,
        pool="threads",
        env={"TASK_TIME_LIMIT": "3", "TASK_SOFT_TIME_LIMIT": "2"},
        extra_args=["-I", "tests.support.slow_tasks"],
    ).start()
    try:
        celery_app.send_task("tests.sleep", args=[60], queue=queue)
        deadline = time.monotonic() + 30
        while w.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert w.proc.returncode == EXIT_HARD_TIME_LIMIT, w.log()[-2000:]
        assert "task_hard_time_limit_exceeded" in w.log()
    finally:
        if w.proc.poll() is None:
            os.killpg(w.proc.pid, signal.SIGKILL)
        celery_app.connection_for_write().default_channel.queue_delete(queue)
