"""Redis clients: one pooled sync client per process, short timeouts."""

from __future__ import annotations

from functools import lru_cache

import redis

from core.settings import get_settings


@lru_cache
def get_redis() -> redis.Redis:
    settings = get_settings()
    return redis.Redis.from_url(
        settings.redis_url,
        socket_timeout=2.0,
        socket_connect_timeout=1.0,
        health_check_interval=15,
        decode_responses=True,
    )


def reset_redis() -> None:
    """Drop the cached client (after a fork or a settings change)."""
    get_redis.cache_clear()


def ping_redis(timeout_s: float) -> None:
    client = redis.Redis.from_url(
        get_settings().redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
    )
    try:
        client.ping()
    finally:
        client.close()
