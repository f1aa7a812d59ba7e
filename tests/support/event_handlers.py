"""Test-only event handlers, loaded by every test process and worker (EVENT_HANDLER_MODULES).

``test_flaky`` handles ``system.health_check`` events, which nothing else emits in tests.
What it does for an event is set in Redis by the test (``arm``): fail the first N attempts,
or fail until "fixed". Every attempt's time is recorded so a test can see the backoff.
"""

from __future__ import annotations

import time
from typing import Any

from core.redis_client import get_redis
from tasks.handlers import register

FLAKY = "test_flaky"
ALWAYS = -1


def _key(event_id: str, part: str) -> str:
    return f"oms:test:handler:{event_id}:{part}"


def arm(event_id: str, fail_times: int) -> None:
    """Fail the first ``fail_times`` attempts (``ALWAYS``: until :func:`fix` is called)."""
    get_redis().set(_key(event_id, "fail_times"), fail_times)


def fix(event_id: str) -> None:
    get_redis().set(_key(event_id, "fail_times"), 0)


def attempts(event_id: str) -> list[float]:
    return [float(t) for t in get_redis().lrange(_key(event_id, "attempts"), 0, -1)]


def successes(event_id: str) -> int:
    return int(get_redis().get(_key(event_id, "ok")) or 0)


@register(FLAKY, types={"system.health_check"}, max_retries=3)
def flaky(event: dict[str, Any]) -> None:
    r = get_redis()
    event_id = event["eventId"]
    attempt = r.rpush(_key(event_id, "attempts"), f"{time.time():.3f}")
    fail_times = int(r.get(_key(event_id, "fail_times")) or 0)
    if fail_times == ALWAYS or attempt <= fail_times:
        raise RuntimeError(f"test handler told to fail (attempt {attempt})")
    r.incr(_key(event_id, "ok"))
