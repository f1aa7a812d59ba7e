"""A test-only task that blocks past any time limit (loaded into a worker with ``-I``)."""

from __future__ import annotations

import time

from tasks.app import celery_app


@celery_app.task(name="tests.sleep", acks_late=True)
def sleep(seconds: float) -> None:
    time.sleep(seconds)
