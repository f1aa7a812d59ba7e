"""The response envelope of API.md and the error type routes raise."""

from __future__ import annotations

import hashlib
import math
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from core.context import correlation_id_var


class ApiError(Exception):
    """An expected failure with its HTTP status, stable code and field errors."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.errors = errors
        self.headers = headers


def not_found(what: str, code: str | None = None) -> ApiError:
    return ApiError(404, code or f"{what.upper().replace(' ', '_')}_NOT_FOUND", f"{what} not found")


def success(
    data: dict[str, Any] | None = None,
    *,
    message: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"status": "success"}
    if message:
        body["message"] = message
    body["data"] = data or {}
    return JSONResponse(body, status_code=status_code, headers=headers)


def paginated(key: str, items: list[Any], *, page: int, limit: int, total: int) -> JSONResponse:
    body = {
        "status": "success",
        "data": {key: items},
        "results": len(items),
        "pagination": {
            "page": page,
            "limit": limit,
            "total": total,
            "pages": math.ceil(total / limit) if limit else 0,
        },
    }
    return JSONResponse(body)


def failure_body(
    status_code: int, code: str, message: str, errors: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "status": "error" if status_code >= 500 else "fail",
        "message": message,
        "code": code,
        "correlationId": correlation_id_var.get() or "",
    }
    if errors:
        body["errors"] = errors
    return body


def failure(
    status_code: int,
    code: str,
    message: str,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        failure_body(status_code, code, message, errors), status_code=status_code, headers=headers
    )


def entity_tag(response: JSONResponse, version: int | None = None) -> str:
    """A strong ETag for exactly these bytes: ``"<version>-<digest>"`` (the version for humans).

    Derived from the body rather than the version alone, because a few writes (clearing the
    attention flag) change what a reader sees without a new version.
    """
    digest = hashlib.blake2b(bytes(response.body), digest_size=8).hexdigest()
    return f'"{version}-{digest}"' if version is not None else f'"{digest}"'


def tag_matches(header: str | None, etag: str) -> bool:
    """RFC 9110 list match of ``If-Match``/``If-None-Match`` (weak prefixes compare equal)."""
    if not header:
        return False
    wanted = {t.strip().removeprefix("W/") for t in header.split(",")}
    return "*" in wanted or etag in wanted


def conditional(request: Request, response: JSONResponse, version: int | None = None) -> Response:
    """Stamp ``response`` with its ETag; 304 with no body when the client already has it."""
    etag = entity_tag(response, version)
    if tag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers={"ETag": etag})
    response.headers["ETag"] = etag
    return response
