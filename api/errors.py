"""Exception handlers: every failure leaves in the envelope, never as a bare 500."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pymongo.errors import AutoReconnect, ConnectionFailure, ServerSelectionTimeoutError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.envelope import ApiError, failure
from api.openapi_docs import allowed_methods
from monitoring.logging import get_logger
from workflows.errors import GatewayConfigError, PermanentError, TransientError

log = get_logger(__name__)

_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
}


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or (str(loc[0]) if loc else "body")


def validation_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    errors = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        message = err.get("msg", "invalid value")
        if err.get("type") == "extra_forbidden":
            message = "unknown field"
        elif err.get("type") == "json_invalid":
            message = "malformed JSON body"
        errors.append({"field": _field_name(loc), "message": message})
    return errors


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError):
        return failure(exc.status_code, exc.code, exc.message, exc.errors, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError):
        errors = validation_errors(exc)
        names = ", ".join(sorted({e["field"] for e in errors}))
        return failure(400, "VALIDATION_ERROR", f"invalid request: {names}", errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
        message = exc.detail if isinstance(exc.detail, str) else code.lower()
        if exc.status_code == 404 and message == "Not Found":
            message = "route not found"
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            # Starlette names only the first route matching the path; a path served by
            # several routes (GET and PATCH of one resource) allows all their methods.
            headers["Allow"] = ", ".join(allowed_methods(request.app, request.scope))
        return failure(exc.status_code, code, message, headers=headers or None)

    @app.exception_handler(ServerSelectionTimeoutError)
    @app.exception_handler(AutoReconnect)
    @app.exception_handler(ConnectionFailure)
    async def _mongo_down(_: Request, exc: Exception):
        log.warning("dependency_unavailable", dependency="mongo", error=type(exc).__name__)
        return failure(
            503,
            "SERVICE_UNAVAILABLE",
            "database (mongo) unavailable, try again shortly",
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(RedisConnectionError)
    @app.exception_handler(RedisTimeoutError)
    async def _redis_down(_: Request, exc: Exception):
        log.warning("dependency_unavailable", dependency="redis", error=type(exc).__name__)
        return failure(
            503,
            "SERVICE_UNAVAILABLE",
            "cache/broker (redis) unavailable, try again shortly",
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(TransientError)
    async def _transient(_: Request, exc: TransientError):
        return failure(503, "SERVICE_UNAVAILABLE", exc.message, headers={"Retry-After": "5"})

    @app.exception_handler(PermanentError)
    async def _permanent(_: Request, exc: PermanentError):
        # A provider refusal the route did not handle itself: the caller's input was wrong.
        if exc.code == "resource_missing":
            return failure(404, "NOT_FOUND", "resource not found")
        return failure(400, exc.code.upper(), exc.message)

    @app.exception_handler(GatewayConfigError)
    async def _gateway_config(_: Request, exc: GatewayConfigError):
        log.error("gateway_misconfigured", error=exc.message)
        return failure(503, "PAYMENTS_UNAVAILABLE", "payment provider is misconfigured")

    @app.exception_handler(Exception)
    async def _unhandled(_: Request, exc: Exception):
        log.exception("unhandled_error", error=type(exc).__name__)
        return failure(500, "INTERNAL_ERROR", "internal server error")
