"""What an API key may call: each route family needs one scope (read or write by method).

A route no family covers (profiles, payments, keys themselves) is closed to API keys.
"""

from __future__ import annotations

SCOPES = (
    "orders:read",
    "orders:write",
    "products:write",
    "events:read",
    "webhooks:manage",
)
READ_METHODS = frozenset({"GET", "HEAD"})


def required_scope(method: str, path: str) -> str | None:
    """The scope ``method path`` (a route template such as /api/orders/{order_id}) needs."""
    reading = method.upper() in READ_METHODS
    if path.startswith(("/api/orders", "/api/returns")):
        return "orders:read" if reading else "orders:write"
    if path.startswith("/api/products"):
        return None if reading else "products:write"
    if path.startswith("/api/events") and reading:
        return "events:read"
    if path.startswith("/api/webhook-subscriptions"):
        return "webhooks:manage"
    return None
