"""OpenAPI documentation of the envelope, so schema checks (Schemathesis) validate bodies.

Routes still answer through ``api.envelope``; these models only describe the wire shape.
Use ``error_responses(400, 401, 404)`` in a route's ``responses=`` to document failures.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class FieldError(BaseModel):
    field: str
    message: str


class FailureBody(BaseModel):
    """Every 4xx/5xx body: status fail (4xx) or error (5xx), a stable code, the request id."""

    status: Literal["fail", "error"]
    message: str
    code: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")
    correlationId: str
    errors: list[FieldError] | None = None


_DESCRIPTIONS = {
    400: "Validation failed (one entry per bad field)",
    401: "Missing, invalid, expired or revoked token, or bad credentials",
    403: "Authenticated but not allowed (e.g. a customer on an admin route)",
    404: "Not found, or not yours",
    409: "Conflict with the current state",
    413: "Request body too large",
    429: "Rate limited; see Retry-After",
    503: "A dependency is unavailable; see Retry-After",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries documenting the failure envelope for the given statuses."""
    return {
        status: {"model": FailureBody, "description": _DESCRIPTIONS.get(status, "Failure")}
        for status in statuses
    }
