"""Per-process clients for any worker pool, and the hard time limit where Celery has none.

Prefork children connect in ``worker_process_init`` (a pymongo client must not cross a
fork). The threads, solo and gevent pools run tasks in the worker's main process, which
never fires that signal: they connect at ``worker_init`` instead. Every client is shared by
the threads of one process: pymongo's ``MongoClient`` and redis-py's connection pool are
thread-safe, the Stripe SDK's ``RequestsClient`` keeps one session per thread, the outbox
and beat locks are Redis locks keyed by a token (not by thread), and Prometheus
multiprocess files are per process (one file set for the whole threads pool).

Celery enforces ``task_time_limit`` only on prefork (it kills the child). A thread cannot
be killed, so on the other pools a watchdog thread does the next best thing: a task still
running past the hard limit makes the whole worker process exit. Its acks-late messages go
back to the broker (RabbitMQ at once, Redis after the visibility timeout) and, as with a
killed prefork child, the idempotent step runs again elsewhere; the supervisor (``make up``,
compose's ``restart:``, Kubernetes) starts the worker again. Every blocking call already has
its own timeout (Stripe, Mongo, Redis), so this is a backstop, not the normal path.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import structlog
from celery.signals import task_postrun, task_prerun, worker_init, worker_process_init

from core.settings import get_settings

log = structlog.get_logger(__name__)
EXIT_HARD_TIME_LIMIT = 70

_running: dict[str, tuple[float, str]] = {}  # task id → (monotonic start, task name)
_running_lock = threading.Lock()
_watchdog_started = False


def connect_process_clients() -> None:
    """(Re)connect every per-process client: logging, Redis, Mongo."""
    from core.db import connect_mongo
    from core.redis_client import reset_redis
    from monitoring.logging import configure_logging

    configure_logging(force=True)
    # Before connecting: pymongo's instrumentation listens on clients created after it.
    setup_process_tracing("worker")
    reset_redis()
    connect_mongo()


def setup_process_tracing(component: str) -> None:
    # Traces (issue 19): after the fork, so each process has its own exporter thread.
    from monitoring.tracing import setup_tracing

    setup_tracing(component)


def pool_name(pool_cls: Any) -> str:
    """'prefork', 'threads', 'solo', 'gevent', … from a worker's pool class or alias."""
    if isinstance(pool_cls, str):
        return {"processes": "prefork", "thread": "threads"}.get(pool_cls, pool_cls)
    module = getattr(pool_cls, "__module__", "") or ""
    name = module.rsplit(".", 1)[-1]
    return {"thread": "threads", "prefork": "prefork"}.get(name, name)


@worker_process_init.connect
def _connect_after_fork(**_: object) -> None:
    connect_process_clients()


@worker_init.connect
def _connect_in_main_process(sender: Any = None, **_: object) -> None:
    kind = pool_name(getattr(sender, "pool_cls", "prefork"))
    if kind == "prefork":
        return  # the parent forks its pool: the children connect, the parent must not
    connect_process_clients()
    start_watchdog(get_settings().task_time_limit)
    log.info("worker_pool_ready", pool=kind, hard_time_limit_s=get_settings().task_time_limit)


@task_prerun.connect
def _task_started(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if _watchdog_started and task_id:
        with _running_lock:
            _running[task_id] = (time.monotonic(), getattr(task, "name", "?"))


@task_postrun.connect
def _task_ended(task_id: str | None = None, **_: Any) -> None:
    if _watchdog_started and task_id:
        with _running_lock:
            _running.pop(task_id, None)


def overdue(limit_s: float, now: float | None = None) -> list[tuple[str, str, float]]:
    """Tasks running longer than ``limit_s``: (task id, name, seconds)."""
    now = time.monotonic() if now is None else now
    with _running_lock:
        return [
            (tid, name, now - started)
            for tid, (started, name) in _running.items()
            if now - started > limit_s
        ]


def start_watchdog(limit_s: float, interval_s: float = 1.0) -> None:
    global _watchdog_started
    if _watchdog_started or limit_s <= 0:
        return
    _watchdog_started = True

    def watch() -> None:
        while True:
            time.sleep(interval_s)
            late = overdue(limit_s)
            if late:
                tid, name, secs = late[0]
                log.critical(
                    "task_hard_time_limit_exceeded",
                    task_id=tid,
                    task_name=name,
                    seconds=round(secs, 1),
                    limit_s=limit_s,
                    action="worker process exits; unacked tasks go back to the broker",
                )
                os._exit(EXIT_HARD_TIME_LIMIT)

    threading.Thread(target=watch, name="oms-hard-time-limit", daemon=True).start()
