"""Password hashing off the request path: register and login run in a bounded pool.

An argon2 hash is CPU work (~28 ms of one core here, see core.security.ARGON2_PARAMS). As
plain sync routes, a burst of sign-ups took every thread of Starlette's shared threadpool
(40) and ran 40 hashes at once on two cores, so every other sync route (placing an order,
reading one) queued behind them for a thread. The auth routes are async instead and run
their work in at most ``pool_size()`` threads under a limiter of their own, so the rest of
a burst waits on the event loop (which costs nothing and never blocks it) and the shared
threadpool stays free for everything else. Inside, ``core.security`` lets only one hash
per core run at a time (``HASH_SLOTS``); the pool is a few times larger so the Mongo and
Redis work around the hashes (the user's insert, the login's update, the outbox publish)
overlaps with them instead of queueing behind them.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread
from anyio import CapacityLimiter

from core.security import HASH_SLOTS

T = TypeVar("T")
_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, CapacityLimiter] = (
    weakref.WeakKeyDictionary()
)


def pool_size() -> int:
    """Auth requests at work at once: 4 per hash slot (one slot per core)."""
    return 4 * HASH_SLOTS


def _limiter() -> CapacityLimiter:
    # One per event loop (each TestClient runs its own loop).
    loop = asyncio.get_running_loop()
    limiter = _limiters.get(loop)
    if limiter is None:
        limiter = _limiters[loop] = CapacityLimiter(pool_size())
    return limiter


async def run_auth(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run ``fn`` (password work) in the bounded auth pool; the caller's context goes along."""
    return await anyio.to_thread.run_sync(
        functools.partial(fn, *args, **kwargs), limiter=_limiter()
    )


def in_use() -> tuple[int, int]:
    """(threads busy, pool size) of this loop's pool, for tests and diagnostics."""
    limiter = _limiter()
    return int(limiter.borrowed_tokens), int(limiter.total_tokens)
