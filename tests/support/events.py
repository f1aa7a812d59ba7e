"""Test helpers for events: a real Redis subscriber on ``oms:events`` and polling waits."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from core.settings import get_settings


def wait_until(check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1) -> Any:
    """Poll ``check`` until it returns something truthy; fail with the last value otherwise."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {value!r})")


class BusListener:
    """Everything published on ``oms:events`` while it runs, in arrival order."""

    def __init__(self) -> None:
        self.client = redis.Redis.from_url(get_settings().redis_url, decode_responses=True)
        self.pubsub = self.client.pubsub()
        self.messages: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> BusListener:
        self.pubsub.subscribe(get_settings().events_channel)
        # The subscription is live once Redis confirmed it.
        wait_until(lambda: (self.pubsub.get_message(timeout=0.2) or {}).get("type") == "subscribe")
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.pubsub.close()
        self.client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self.pubsub.get_message(timeout=0.2)
            if message and message.get("type") == "message":
                self.messages.append(json.loads(message["data"]))

    def of(self, aggregate_id: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("aggregateId") == aggregate_id]

    def ids(self, aggregate_id: str | None = None) -> list[str]:
        events = self.messages if aggregate_id is None else self.of(aggregate_id)
        return [m["eventId"] for m in events]
