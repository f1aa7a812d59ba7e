"""Request/task-scoped context shared by the API, tasks and logging."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

correlation_id_var: ContextVar[str | None] = ContextVar("correlation_id", default=None)

_SAFE_TOKEN = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def safe_correlation_id(value: str | None) -> str:
    """Echo a client's id only if it is a safe short token; otherwise mint one."""
    if value and _SAFE_TOKEN.match(value):
        return value
    return new_correlation_id()
