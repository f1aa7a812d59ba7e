"""System tasks: a no-op ping used by health checks and benchmarks."""

from __future__ import annotations

from tasks.app import celery_app


@celery_app.task(name="maintenance.noop", acks_late=True)
def noop(**_: object) -> str:
    return "ok"
