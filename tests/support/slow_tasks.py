"""Test-only tasks (loaded into a worker with ``-I``); `maintenance.*` names route (and
retry) to the maintenance queue like the app's own tasks."""

from __future__ import annotations

import time

from tasks.app import celery_app


@celery_app.task(name="tests.sleep", acks_late=True)
def sleep(seconds: float) -> None:
    time.sleep(seconds)


@celery_app.task(name="maintenance.test_die", acks_late=True)
def die() -> None:
    """Kill the process running it (a poison message): redelivered until the limit."""
    import os

    os._exit(13)


@celery_app.task(name="maintenance.test_retry_once", bind=True, acks_late=True, max_retries=3)
def retry_once(self, key: str) -> None:
    """First run: retry with a countdown (needs delayed delivery); second run: mark ``key``."""
    from core.redis_client import get_redis

    if self.request.retries == 0:
        raise self.retry(countdown=1)
    get_redis().set(key, "done", ex=600)
