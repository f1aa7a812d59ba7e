"""Pure ASGI middleware: correlation id, body size limit, security headers, HTTP metrics."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.envelope import failure_body
from core.context import correlation_id_var, safe_correlation_id
from monitoring.logging import get_logger
from monitoring.metrics import observe_http
from monitoring.tracing import annotate

log = get_logger(__name__)


class CorrelationMiddleware:
    """Reads or mints X-Correlation-ID, binds it to logs, returns it on every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        raw = headers.get(b"x-correlation-id")
        cid = safe_correlation_id(raw.decode("latin-1") if raw else None)
        token = correlation_id_var.set(cid)
        structlog.contextvars.bind_contextvars(correlation_id=cid)
        scope.setdefault("state", {})["correlation_id"] = cid
        annotate(correlation_id=cid)
        start = time.perf_counter()
        status_holder: dict[str, int] = {}

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                hdrs = list(message.get("headers") or [])
                hdrs.append((b"x-correlation-id", cid.encode()))
                message["headers"] = hdrs
            await send(message)

        try:
            await self.app(scope, receive, send_with_header)
        except Exception as exc:
            # Answer 500 in the envelope, with the correlation header, and no trace.
            log.exception("unhandled_error", error=type(exc).__name__)
            if scope["type"] != "http" or "status" in status_holder:
                raise
            body = json.dumps(failure_body(500, "INTERNAL_ERROR", "internal server error"))
            await send_with_header(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body.encode()})
        finally:
            if scope["type"] == "http":
                route = scope.get("route")
                path = getattr(route, "path", None) or "unmatched"
                observe_http(
                    scope.get("method", "GET"),
                    path,
                    status_holder.get("status", 500),
                    time.perf_counter() - start,
                )
            structlog.contextvars.unbind_contextvars("correlation_id")
            correlation_id_var.reset(token)


class BodySizeLimitMiddleware:
    """Answers 413 in the envelope for bodies over the limit, declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _reject(self, send: Send) -> None:
        body = json.dumps(
            failure_body(413, "PAYLOAD_TOO_LARGE", f"request body over {self.max_bytes} bytes")
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        received = 0
        too_large = False

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    return {"type": "http.disconnect"}
            return message

        started = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if too_large and not started:
                started = True
                await self._reject(send)
                return
            if too_large:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, limited_receive, guarded_send)
        if too_large and not started:
            await self._reject(send)


class RequestTimeoutMiddleware:
    """A deadline per HTTP request: past it the client gets 504 ``REQUEST_TIMEOUT``.

    The handler runs as a task; at the deadline it is cancelled and not awaited (a sync
    route's thread cannot be interrupted, it finishes in the background and whatever it
    sends is dropped). A response already started is left to finish.
    """

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.seconds <= 0:
            await self.app(scope, receive, send)
            return
        state = {"started": False, "timed_out": False}

        async def guarded_send(message: Message) -> None:
            if state["timed_out"]:
                return
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, guarded_send))
        done, _ = await asyncio.wait({task}, timeout=self.seconds)
        if task in done:
            task.result()  # re-raise what the app raised
            return
        if state["started"]:
            await task  # streaming already: let it finish
            return
        state["timed_out"] = True
        task.cancel()
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        log.warning("request_timeout", path=scope.get("path"), seconds=self.seconds)
        body = json.dumps(
            failure_body(504, "REQUEST_TIMEOUT", f"no answer within {self.seconds:g} s")
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 504,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


# Responses of these paths may carry a token or personal data: never stored by any cache.
NO_STORE_PREFIXES = ("/api/",)


class SecurityHeadersMiddleware:
    """Adds conservative security headers; the CSP allows Stripe's hosts only.

    ``stripe_sources`` (per directive, from the gateway's ``csp_sources``): Stripe's
    documented Stripe.js / 3-D Secure / API hosts in production, the emulator's origin in
    dev. The WebSocket is allowed to the page's own origin only (``page_origin``, the
    public base URL, in its ws/wss form), not to any ``ws:``/``wss:`` host.

    Also ``Cache-Control: no-store`` on API responses (tokens, profiles, orders) unless the
    route set its own, and ``Strict-Transport-Security`` on responses served over https
    (the scheme is https directly or via X-Forwarded-Proto from a trusted proxy).
    """

    def __init__(
        self,
        app: ASGIApp,
        stripe_sources: Mapping[str, Sequence[str]],
        page_origin: str,
        hsts_seconds: int = 0,
    ) -> None:
        self.app = app
        self.hsts = f"max-age={hsts_seconds}; includeSubDomains".encode() if hsts_seconds else b""

        def allow(directive: str, *extra: str) -> str:
            sources = ["'self'", *extra, *stripe_sources.get(directive, ())]
            return f"{directive} {' '.join(dict.fromkeys(sources))}; "

        self.csp = (
            "default-src 'self'; "
            + allow("script-src")
            + allow("frame-src")
            + allow("connect-src", *_websocket_origin(page_origin))
            + "img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            "object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
        )
        # Swagger UI boots with one inline script.
        self.docs_csp = self.csp.replace("script-src 'self'", "script-src 'self' 'unsafe-inline'")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        csp = self.docs_csp if path.startswith("/api-docs") else self.csp
        https = scope.get("scheme") == "https"
        no_store = path.startswith(NO_STORE_PREFIXES)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                hdrs: list[Any] = list(message.get("headers") or [])
                if https and self.hsts:
                    hdrs.append((b"strict-transport-security", self.hsts))
                if no_store and not any(k.lower() == b"cache-control" for k, _ in hdrs):
                    hdrs.append((b"cache-control", b"no-store"))
                hdrs += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                    (b"content-security-policy", csp.encode()),
                ]
                message["headers"] = hdrs
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _websocket_origin(page_origin: str) -> tuple[str, ...]:
    """``https://shop.example`` → ``wss://shop.example`` (``http`` → ``ws``); () if unusable."""
    parts = urlsplit(page_origin or "")
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme)
    return (f"{scheme}://{parts.netloc}",) if scheme and parts.netloc else ()
