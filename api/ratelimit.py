"""Rate limits in Redis (the ``limits`` library, moving window), so replicas share counts.

- ``RateLimitMiddleware`` applies ``settings.rate_limit_default`` to every ``/api/`` request,
  per user (the JWT's ``sub``, signature-checked, no database hit) or else per client IP.
- ``rate_limit(setting_name, key_func)`` is a route dependency for stricter limits, e.g.
  ``dependencies=[Depends(rate_limit("rate_limit_orders", user_key))]``.

An empty setting switches that limit off. Keys live under ``oms:rl:``. 429 answers carry
``Retry-After`` and the failure envelope with code ``RATE_LIMITED``.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Awaitable, Callable

import anyio.to_thread
import redis
from fastapi import FastAPI, Request
from limits import RateLimitItem, parse
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from api.envelope import ApiError, failure_body
from core.redis_client import make_redis
from core.security import InvalidToken, decode_access_token
from core.settings import Settings
from monitoring.logging import get_logger

KEY_PREFIX = "oms:rl"
DEFAULT_LIMIT = "rate_limit_default"
API_KEY_LIMIT = "rate_limit_api_key"
API_KEY_PREFIX = "oms_"  # models.api_key.KEY_PREFIX (the limiter reads no models)
WEBHOOK_LIMIT = "rate_limit_webhook"
WEBHOOK_PATH = "/api/payments/webhook"
KeyFunc = Callable[[Request], Awaitable[str]]
log = get_logger(__name__)


class RateLimiter:
    """Limits parsed from one Settings instance, counted in that instance's Redis."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._items: dict[str, RateLimitItem | None] = {}
        self._strategy: MovingWindowRateLimiter | None = None

    def limit_for(self, setting_name: str) -> RateLimitItem | None:
        if setting_name not in self._items:
            value = str(getattr(self.settings, setting_name)).strip()
            self._items[setting_name] = parse(value) if value else None
        return self._items[setting_name]

    def _limiter(self) -> MovingWindowRateLimiter:
        if self._strategy is None:
            storage = RedisStorage(
                "redis://",  # the pool below decides (core.redis_client: Sentinel too)
                key_prefix=KEY_PREFIX,
                connection_pool=make_redis(decode_responses=False).connection_pool,
            )
            self._strategy = MovingWindowRateLimiter(storage)
        return self._strategy

    def hit(self, setting_name: str, key: str) -> int | None:
        """Count one request; None if allowed, else the seconds to wait."""
        item = self.limit_for(setting_name)
        if item is None:
            return None
        limiter = self._limiter()
        if limiter.hit(item, setting_name, key):
            return None
        stats = limiter.get_window_stats(item, setting_name, key)
        return max(1, math.ceil(stats.reset_time - time.time()))


def _too_many(retry_after: int) -> tuple[int, str, str]:
    return 429, "RATE_LIMITED", f"too many requests, retry in {retry_after} s"


def client_ip(scope: Scope) -> str:
    """The caller's address: the peer, or X-Forwarded-For's when the peer is a trusted proxy
    (rewritten by ProxyHeadersMiddleware from TRUSTED_PROXIES)."""
    client = scope.get("client")
    return client[0] if client else "unknown"


def bearer_subject(authorization: str | None, settings: Settings) -> str | None:
    """The verified ``sub`` of a Bearer token, without touching the database; for an API
    key, ``key:<digest>`` (the route's auth rejects a made-up one)."""
    if not authorization or not authorization.lower().startswith("bearer "):
        return None
    token = authorization[7:].strip()
    if token.startswith(API_KEY_PREFIX):
        return f"key:{hashlib.sha256(token.encode()).hexdigest()[:24]}"
    try:
        return decode_access_token(authorization[7:].strip(), settings).sub
    except InvalidToken:
        return None


async def ip_key(request: Request) -> str:
    return f"ip:{client_ip(request.scope)}"


async def user_key(request: Request) -> str:
    """Per user when the token is valid, else per IP (the route's auth answers 401 anyway)."""
    limiter: RateLimiter = request.app.state.rate_limiter
    sub = bearer_subject(request.headers.get("authorization"), limiter.settings)
    return f"user:{sub}" if sub else await ip_key(request)


def email_digest(email: str) -> str:
    """The key part for an email: hashed so no plaintext email sits in Redis keys."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:24]


async def body_email(request: Request) -> str:
    """The ``email`` of the raw JSON body (FastAPI has already read it), or ""."""
    try:
        body = json.loads(await request.body() or b"{}")
        if isinstance(body, dict) and isinstance(body.get("email"), str):
            return body["email"]
    except (ValueError, UnicodeDecodeError):
        pass
    return ""


async def login_key(request: Request) -> str:
    """Per client IP and email."""
    return f"{await ip_key(request)}|email:{email_digest(await body_email(request))}"


class LoginLockout:
    """Per-account lockout across all clients, with exponential back-off.

    Failures of one email (known or not, so a lockout reveals nothing) are counted for
    ``login_failure_window_seconds``; from the ``login_lockout_threshold``-th on, every
    failure locks the email for ``login_lockout_base_seconds * 2**(n - threshold)``,
    capped at ``login_lockout_max_seconds``. A lock always ends, so the real owner's
    correct password gets through after at most the cap; a success clears the count.
    Threshold 0 switches it off; a Redis failure lets the login through (logged).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._redis: redis.Redis | None = None

    @property
    def enabled(self) -> bool:
        return self.settings.login_lockout_threshold > 0

    def _client(self) -> redis.Redis:
        if self._redis is None:
            self._redis = redis.Redis.from_url(
                self.settings.redis_url, socket_timeout=2.0, socket_connect_timeout=1.0
            )
        return self._redis

    @staticmethod
    def _keys(email: str) -> tuple[str, str]:
        digest = email_digest(email)
        return f"{KEY_PREFIX}:login-fails:{digest}", f"{KEY_PREFIX}:login-lock:{digest}"

    def locked_for(self, email: str) -> int | None:
        """Seconds left on this email's lock, or None."""
        if not self.enabled:
            return None
        try:
            ttl = self._client().pttl(self._keys(email)[1])
        except RedisError as exc:
            log.warning("login_lockout_unavailable", error=type(exc).__name__)
            return None
        return max(1, math.ceil(ttl / 1000)) if ttl and ttl > 0 else None

    def failed(self, email: str) -> None:
        if not self.enabled:
            return
        s = self.settings
        fails_key, lock_key = self._keys(email)
        try:
            client = self._client()
            pipe = client.pipeline(transaction=True)
            pipe.incr(fails_key)
            pipe.expire(fails_key, s.login_failure_window_seconds)
            count = int(pipe.execute()[0])
            over = count - s.login_lockout_threshold
            if over >= 0:
                seconds = min(s.login_lockout_max_seconds, s.login_lockout_base_seconds * 2**over)
                client.set(lock_key, "1", ex=max(1, int(seconds)))
                log.warning("login_locked", seconds=int(seconds), failures=count)
        except RedisError as exc:
            log.warning("login_lockout_unavailable", error=type(exc).__name__)

    def succeeded(self, email: str) -> None:
        if not self.enabled:
            return
        try:
            self._client().delete(*self._keys(email))
        except RedisError as exc:
            log.warning("login_lockout_unavailable", error=type(exc).__name__)


def rate_limit(setting_name: str, key_func: KeyFunc) -> Callable[[Request], Awaitable[None]]:
    """A route dependency enforcing the limit named by a Settings field."""

    async def enforce_rate_limit(request: Request) -> None:
        limiter: RateLimiter = request.app.state.rate_limiter
        if limiter.limit_for(setting_name) is None:
            return
        key = await key_func(request)
        retry_after = await run_in_threadpool(limiter.hit, setting_name, key)
        if retry_after is not None:
            status, code, message = _too_many(retry_after)
            raise ApiError(status, code, message, headers={"Retry-After": str(retry_after)})

    return enforce_rate_limit


class RateLimitMiddleware:
    """The default limit for /api/ requests; fails open (with a warning) if Redis is down."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/api/"):
            await self.app(scope, receive, send)
            return
        # The webhook counts in a bucket of its own: public traffic cannot starve Stripe.
        if path == WEBHOOK_PATH:
            limit_name, key = WEBHOOK_LIMIT, f"ip:{client_ip(scope)}"
        else:
            headers = dict(scope.get("headers") or [])
            raw_auth = headers.get(b"authorization")
            sub = bearer_subject(
                raw_auth.decode("latin-1") if raw_auth else None, self.limiter.settings
            )
            key = f"user:{sub}" if sub else f"ip:{client_ip(scope)}"
            # A machine client's key has a limit of its own (RATE_LIMIT_API_KEY).
            limit_name = API_KEY_LIMIT if sub and sub.startswith("key:") else DEFAULT_LIMIT
        if self.limiter.limit_for(limit_name) is None:
            await self.app(scope, receive, send)
            return
        try:
            retry_after = await anyio.to_thread.run_sync(self.limiter.hit, limit_name, key)
        except RedisError as exc:
            log.warning("rate_limit_unavailable", error=type(exc).__name__)
            retry_after = None
        if retry_after is None:
            await self.app(scope, receive, send)
            return
        body = json.dumps(failure_body(*_too_many(retry_after))).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"retry-after", str(retry_after).encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def install_rate_limits(app: FastAPI, settings: Settings) -> RateLimiter:
    """Build the app's limiter from its settings, keep it on app.state, add the middleware.

    Call it before the other middleware so it runs innermost: its 429s still get the
    correlation id, CORS and security headers.
    """
    limiter = RateLimiter(settings)
    app.state.rate_limiter = limiter
    app.state.login_lockout = LoginLockout(settings)
    app.add_middleware(RateLimitMiddleware, limiter=limiter)
    return limiter
