"""Redis clients: the one factory for every use (rate limits, revocations, bus, locks, beat
locks, the event counter), for a single server or a Sentinel-managed master.

URLs:

* ``redis://[[user]:password@]host:port/db`` (and ``rediss://``, ``unix://``): one server;
* ``redis+sentinel://[[user]:password@]host1:port1,host2:port2[/service[/db]]``: ask the
  sentinels for the current master of ``service`` (default ``REDIS_SENTINEL_MASTER``); the
  password is the master's (and the sentinels' when they have one). After a failover, the
  next command on a pooled connection reconnects to the new master.

``get_redis()`` is one pooled sync client per process (thread-safe); ``make_redis()`` a new
one (a short-lived client, an asyncio client for the WebSocket bus).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.sentinel import Sentinel

from core.settings import get_settings

SENTINEL_SCHEME = "redis+sentinel"
DEFAULTS: dict[str, Any] = {
    "socket_timeout": 2.0,
    "socket_connect_timeout": 1.0,
    "health_check_interval": 15,
    "decode_responses": True,
}


@dataclass(frozen=True)
class SentinelTarget:
    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int
    username: str | None
    password: str | None


def parse_sentinel_url(url: str, default_service: str | None = None) -> SentinelTarget:
    parts = urlsplit(url)
    if parts.scheme != SENTINEL_SCHEME:
        raise ValueError(f"not a {SENTINEL_SCHEME}:// URL: {url.split('@')[-1]}")
    netloc = parts.netloc
    username = password = None
    if "@" in netloc:
        auth, netloc = netloc.rsplit("@", 1)
        user, _, pw = auth.partition(":")
        username, password = (unquote(user) or None), (unquote(pw) or None)
    hosts: list[tuple[str, int]] = []
    for item in netloc.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host:
            host, port = port, "26379"
        hosts.append((host, int(port or 26379)))
    path = [p for p in parts.path.split("/") if p]
    service = path[0] if path else (default_service or get_settings().redis_sentinel_master)
    db = int(path[1]) if len(path) > 1 else 0
    return SentinelTarget(tuple(hosts), service, db, username, password)


def is_sentinel_url(url: str) -> bool:
    return url.startswith(f"{SENTINEL_SCHEME}://")


def make_redis(url: str | None = None, *, asyncio: bool = False, **options: Any):
    """A new client for ``url`` (default ``REDIS_URL``); ``options`` override the defaults."""
    url = url or get_settings().redis_url
    opts = {**DEFAULTS, **options}
    if not is_sentinel_url(url):
        cls = aioredis.Redis if asyncio else redis.Redis
        return cls.from_url(url, **opts)
    target = parse_sentinel_url(url)
    auth = {"username": target.username, "password": target.password}
    sentinel_cls = AsyncSentinel if asyncio else Sentinel
    sentinel = sentinel_cls(
        list(target.sentinels),
        sentinel_kwargs={
            "socket_timeout": opts["socket_timeout"],
            "socket_connect_timeout": opts["socket_connect_timeout"],
            **({"password": target.password} if target.password else {}),
        },
        **opts,
        **auth,
    )
    return sentinel.master_for(target.service, db=target.db)


def kombu_broker(url: str) -> tuple[str, dict[str, Any]]:
    """The Celery broker URL and transport options for ``url``: ``redis+sentinel://`` becomes
    kombu's sentinel transport (``sentinel://h1:p1;sentinel://h2:p2`` + ``master_name``)."""
    if not is_sentinel_url(url):
        return url, {}
    target = parse_sentinel_url(url)
    auth = f":{target.password}@" if target.password else ""
    broker = ";".join(f"sentinel://{auth}{h}:{p}/{target.db}" for h, p in target.sentinels)
    options: dict[str, Any] = {"master_name": target.service}
    if target.password:
        options["sentinel_kwargs"] = {"password": target.password}
    return broker, options


@lru_cache
def get_redis() -> redis.Redis:
    return make_redis()


def reset_redis() -> None:
    """Drop the cached client (after a fork or a settings change)."""
    get_redis.cache_clear()


def ping_redis(timeout_s: float) -> None:
    client = make_redis(
        socket_timeout=timeout_s, socket_connect_timeout=timeout_s, health_check_interval=0
    )
    try:
        client.ping()
    finally:
        client.close()
