"""The Redis pub/sub event bus: JSON encoding, publishing, and one async subscription per process.

Publishers (workers, the API lifespan) call :func:`publish_events`. The API holds one
:class:`EventHub`, which keeps a single Redis subscription and fans every event out to the
queues of its WebSocket connections; when Redis goes away it resubscribes with backoff and
tells each connection that it may have missed events (``GAP``), so they catch up from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

import redis
import redis.asyncio as aioredis
import structlog

from core.redis_client import get_redis, make_redis
from core.settings import get_settings

EVENTS_CHANNEL = "oms:events"  # the default; settings.events_channel decides
log = structlog.get_logger(__name__)


class _Gap:
    """Marker put into a subscriber's queue: live events may have been lost before this point."""

    def __repr__(self) -> str:
        return "GAP"


GAP = _Gap()


class _Drain:
    """Marker put into every subscriber's queue when the process drains (SIGTERM)."""

    def __repr__(self) -> str:
        return "DRAIN"


DRAIN = _Drain()


def to_jsonable(value: Any) -> Any:
    """Datetimes as ISO-8601 UTC strings, recursively; everything else as is."""
    if isinstance(value, datetime):
        # Mongo hands back naive UTC when a client is not tz_aware.
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def encode_event(event: Mapping[str, Any]) -> str:
    return json.dumps(to_jsonable(event), separators=(",", ":"), default=str)


def decode_event(raw: str | bytes) -> dict[str, Any]:
    return json.loads(raw)


def events_channel() -> str:
    return get_settings().events_channel


def publish_events(events: Iterable[Mapping[str, Any]], client: redis.Redis | None = None) -> int:
    """Publish each event on the events channel in one round trip; returns how many were sent."""
    payloads = [encode_event(e) for e in events]
    if not payloads:
        return 0
    channel = events_channel()
    pipe = (client or get_redis()).pipeline(transaction=False)
    for payload in payloads:
        pipe.publish(channel, payload)
    pipe.execute()
    return len(payloads)


class Subscription:
    """One consumer's buffer of live events (dicts) and ``GAP`` markers."""

    def __init__(self, maxsize: int) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize)
        self.lost = False  # set when the buffer overflowed; the consumer must catch up

    def offer(self, item: Any) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.lost = True


class EventHub:
    """A single Redis subscription for the whole process, fanned out to many subscribers."""

    def __init__(
        self,
        redis_url: str,
        channel: str = EVENTS_CHANNEL,
        *,
        idle_ping_s: float = 5.0,
        max_backoff_s: float = 5.0,
    ) -> None:
        self.redis_url = redis_url
        self.channel = channel
        self.idle_ping_s = idle_ping_s
        self.max_backoff_s = max_backoff_s
        self.subscribers: set[Subscription] = set()
        self.subscriptions_made = 0  # how many times a Redis subscription was established
        self._connected: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def connected(self) -> bool:
        return self._connected is not None and self._connected.is_set()

    def start(self) -> None:
        """Start the subscriber loop in the running event loop (idempotent)."""
        if self._task is None or self._task.done():
            self._stopping = False
            self._connected = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="event-hub")

    async def stop(self, timeout_s: float = 3.0) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        task.cancel()
        # redis-py may swallow a cancellation inside a read with a timeout; the flag ends
        # the loop then, and the bounded wait keeps shutdown from hanging regardless.
        await asyncio.wait({task}, timeout=timeout_s)

    async def wait_connected(self, timeout_s: float) -> bool:
        if self._connected is None:
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout_s)
        return self.connected

    def subscribe(self, maxsize: int = 2000) -> Subscription:
        sub = Subscription(maxsize)
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self.subscribers.discard(sub)

    def drain(self) -> int:
        """Tell every subscriber the process is going away; returns how many were told."""
        subscribers = tuple(self.subscribers)
        for sub in subscribers:
            sub.offer(DRAIN)
        return len(subscribers)

    def _fan_out(self, item: Any) -> None:
        for sub in tuple(self.subscribers):
            sub.offer(item)

    async def _run(self) -> None:
        backoff = 0.1
        assert self._connected is not None
        while not self._stopping:
            client = make_redis(
                self.redis_url, asyncio=True, socket_timeout=None, health_check_interval=0
            )
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.subscriptions_made += 1
                self._connected.set()
                # Whoever subscribed before this point may have missed events: catch up.
                self._fan_out(GAP)
                if self.subscriptions_made > 1:
                    log.info("event_hub_resubscribed", attempt=self.subscriptions_made)
                backoff = 0.1
                await self._pump(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any Redis failure: drop the link, back off, resubscribe
                self._connected.clear()
                log.warning("event_hub_disconnected", error=f"{type(exc).__name__}: {exc}"[:200])
                await asyncio.sleep(backoff + random.uniform(0, backoff))
                backoff = min(backoff * 2, self.max_backoff_s)
            finally:
                self._connected.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                with contextlib.suppress(Exception):
                    await client.aclose()

    async def _pump(self, pubsub: aioredis.client.PubSub) -> None:
        while not self._stopping:
            message = await pubsub.get_message(
                ignore_subscribe_messages=True, timeout=self.idle_ping_s
            )
            if message is None:
                # Quiet channel: a ping proves the link is still alive (a dead one raises).
                await asyncio.wait_for(pubsub.ping(), self.idle_ping_s)
                continue
            if message.get("type") != "message":
                continue
            try:
                event = decode_event(message["data"])
            except ValueError:
                log.warning("event_hub_bad_message")
                continue
            self._fan_out(event)
