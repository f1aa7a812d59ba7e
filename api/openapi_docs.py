"""The OpenAPI schema says what the API answers: every operation's errors, in one place.

FastAPI documents only a route's success and a 422 the app never sends (validation fails
with 400 here). ``install_openapi`` post-processes the generated schema once: it drops the
422 and adds the failure envelope (``api.responses.FailureBody``) for every status the
operation can answer, derived from what the route is:

* every operation: 429 (rate limits) and 503 (a dependency down);
* with parameters or a body: 400 (validation); with a body: 413 (too large);
* with the bearer security (``CurrentUser``/``AdminUser``): 401; admin-only: 403;
* with path parameters, or a body naming a resource (``…Id``): 404 (unknown, or not the
  caller's);
* changing state (POST, PATCH, DELETE): 409 (conflicts with the current state).

Statuses a route declares itself (``responses=error_responses(...)``, e.g. 402 for a card
declined while saving it) are kept. The 405 of a path's undeclared methods carries an
``Allow`` naming every method the path serves (``allowed_methods``).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import compile_path
from starlette.types import Scope

from api.deps import get_admin_user
from api.responses import _DESCRIPTIONS, FailureBody

ENVELOPE_REF = "#/components/schemas/FailureBody"
MUTATING = frozenset({"post", "patch", "put", "delete"})
DESCRIPTIONS = {
    **_DESCRIPTIONS,
    400: "Validation failed (one entry per bad field)",
    402: "The card was declined",
    422: "",
}


def _dependency_calls(route: APIRoute) -> set[Any]:
    seen: set[Any] = set()
    stack = [route.dependant]
    while stack:
        dep = stack.pop()
        if dep.call is not None:
            seen.add(dep.call)
        stack.extend(dep.dependencies)
    return seen


def _routes_by_operation(app: FastAPI) -> dict[tuple[str, str], APIRoute]:
    # Included routers are flattened with their prefixed paths (FastAPI's own helper).
    found: dict[tuple[str, str], APIRoute] = {}
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            for method in context.methods or ():
                found[(context.path, method.lower())] = route
    return found


_SCHEMAS: dict[str, Any] = {}


def _names_a_resource(operation: dict[str, Any]) -> bool:
    """A body with an ``…Id`` field (orderId, paymentMethodId) names something that may not
    exist (or not be the caller's): 404."""
    content = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    ref = content.get("schema", {}).get("$ref", "")
    props = _SCHEMAS.get(ref.rsplit("/", 1)[-1], {}).get("properties", {})
    return any(name.endswith("Id") for name in props)


def error_statuses(operation: dict[str, Any], method: str, route: APIRoute | None) -> set[int]:
    """The failure statuses an operation can answer (see the module's list)."""
    statuses = {429, 503}
    params = operation.get("parameters") or []
    has_body = "requestBody" in operation
    if params or has_body:
        statuses.add(400)
    if has_body:
        statuses.add(413)
    if operation.get("security"):
        statuses.add(401)
        if route is not None and get_admin_user in _dependency_calls(route):
            statuses.add(403)
    if any(p.get("in") == "path" for p in params) or (has_body and _names_a_resource(operation)):
        statuses.add(404)
    if method in MUTATING and (
        operation.get("security") or any(p.get("in") == "path" for p in params)
    ):
        statuses.add(409)
    return statuses


def _not_blank(components: dict[str, Any]) -> None:
    """Request strings are stripped before their minLength is checked (ApiModel), so a
    required text of only blanks is refused: say so with a pattern (contains a non-blank)."""
    for model in components.values():
        for prop in (model.get("properties") or {}).values():
            for schema in [prop, *(prop.get("anyOf") or [])]:
                if (
                    schema.get("type") == "string"
                    and schema.get("minLength", 0) >= 1
                    and "pattern" not in schema
                    and "format" not in schema
                ):
                    schema["pattern"] = r"[^\s]"


def document_errors(schema: dict[str, Any], app: FastAPI) -> dict[str, Any]:
    routes = _routes_by_operation(app)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    _SCHEMAS.clear()
    _SCHEMAS.update(components)
    envelope = FailureBody.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in envelope.pop("$defs", {}).items():
        components.setdefault(name, definition)
    components.setdefault("FailureBody", envelope)
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            responses.pop("422", None)
            for status in sorted(error_statuses(operation, method, routes.get((path, method)))):
                responses.setdefault(
                    str(status),
                    {
                        "description": DESCRIPTIONS.get(status) or "Failure",
                        "content": {"application/json": {"schema": {"$ref": ENVELOPE_REF}}},
                    },
                )
    _not_blank(components)
    # FastAPI's validation-error models are unused once the 422s are gone.
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    return schema


def install_openapi(app: FastAPI) -> None:
    """Replace ``app.openapi`` with the generated schema plus every operation's errors."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = document_errors(schema, app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def allowed_methods(app: Any, scope: Scope) -> list[str]:
    """The methods of the request's path, as the schema lists them (for a 405's ``Allow``).

    The first route template matching the path decides (as routing does): /api/orders/stats
    is the stats resource (GET), not an order id, though /api/orders/{order_id} matches too.
    """
    path = scope.get("path", "")
    contexts = [c for c in iter_route_contexts(getattr(app, "routes", [])) if c.methods]
    template = next((c.path for c in contexts if compile_path(c.path)[0].match(path)), None)
    methods: set[str] = set()
    for context in contexts:
        if context.path == template:
            methods |= set(context.methods or ())
    order = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    return sorted(methods, key=lambda m: order.index(m) if m in order else len(order))
