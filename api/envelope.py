"""The response envelope of API.md and the error type routes raise."""

from __future__ import annotations

import math
from typing import Any

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
