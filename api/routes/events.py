"""The event store over HTTP: list, stats, health, correlation chains, replay, dead letters."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from api.customer_views import ADMIN_ONLY_EVENTS, events_view
from api.deps import AdminUser, AppSettings, CurrentUser, ViewerIsAdmin
from api.envelope import ApiError, failure_body, paginated, success
from api.responses import error_responses
from api.schemas import ApiModel
from core.db import get_db, ping_mongo
from core.redis_client import get_redis, ping_redis
from models.dead_letter import DeadLetter
from models.event import (
    EventFilter,
    correlation_chain,
    count_matching,
    counts_by_hour,
    counts_by_type,
    find_events,
)
from models.outbox import outbox_lag
from tasks.dispatch import enqueue_replay, enqueue_task, handler_subscriptions
from workflows.events import EventType

router = APIRouter(prefix="/api/events", tags=["events"])

LIST_PARAMS = frozenset(
    {"type", "aggregateId", "correlationId", "userId", "from", "to", "page", "limit"}
)
FAILURES_KEY = "oms:events:handler_failures"
_KNOWN_TYPES = frozenset(t.value for t in EventType)
_PREFIXES = sorted(
    {".".join(t.split(".")[:n]) + ".*" for t in _KNOWN_TYPES for n in range(1, t.count(".") + 1)}
)
# The type filter as the schema states it: a known type, a known prefix + ".*", or empty.
TYPE_PATTERN = "^(?:|" + "|".join(re.escape(v) for v in sorted(_KNOWN_TYPES) + _PREFIXES) + ")$"


def _bad(errors: list[dict[str, str]]) -> ApiError:
    names = ", ".join(sorted({e["field"] for e in errors}))
    return ApiError(400, "VALIDATION_ERROR", f"invalid request: {names}", errors)


def type_error(value: str) -> str | None:
    """Why ``value`` is not an event type filter (a known type, or a prefix like ``order.*``)."""
    if value in _KNOWN_TYPES:
        return None
    if value.endswith(".*") and any(t.startswith(value[:-1]) for t in _KNOWN_TYPES):
        return None
    return "unknown event type (use e.g. order.created or order.*)"


def _moment(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.strip().upper().replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _int_param(raw: str | None, name: str, default: int, low: int, high: int, errors: list) -> int:
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        errors.append({"field": name, "message": "must be an integer"})
        return default
    if not low <= value <= high:
        errors.append({"field": name, "message": f"must be between {low} and {high}"})
    return value


def parse_list_query(request: Request) -> tuple[EventFilter, int, int]:
    """The list's filters and page from the query string; 400 naming every bad parameter."""
    params = request.query_params
    errors: list[dict[str, str]] = [
        {"field": name, "message": "unknown filter"} for name in params if name not in LIST_PARAMS
    ]
    page = _int_param(params.get("page"), "page", 1, 1, 100_000, errors)
    limit = _int_param(params.get("limit"), "limit", 20, 1, 100, errors)
    values: dict[str, Any] = {}
    for name in ("aggregateId", "correlationId", "userId"):
        value = params.get(name)
        # Empty means not given (as for from/to); the schema says so with minLength 0.
        if value is not None and len(value) > 128:
            errors.append({"field": name, "message": "at most 128 characters"})
        values[name] = value or None
    event_type = params.get("type") or None  # empty: not given
    if event_type is not None and (problem := type_error(event_type)):
        errors.append({"field": "type", "message": problem})
    span: dict[str, datetime | None] = {"from": None, "to": None}
    for name in span:
        if params.get(name) is not None:  # empty is a bad date-time (the schema's format)
            try:
                span[name] = _moment(params[name])
            except ValueError:
                errors.append({"field": name, "message": "must be an ISO-8601 date-time"})
    if span["from"] and span["to"] and span["from"] > span["to"]:
        errors.append({"field": "to", "message": "must not be before from"})
    if errors:
        raise _bad(errors)
    flt = EventFilter(
        type=event_type or None,
        aggregate_id=values["aggregateId"],
        correlation_id=values["correlationId"],
        user_id=values["userId"],
        occurred_from=span["from"],
        occurred_to=span["to"],
    )
    return flt, page, limit


@router.get(
    "",
    summary="Stored events, newest first (customers: their own only)",
    responses=error_responses(400, 401),
)
def list_events(
    request: Request,
    user: CurrentUser,
    type: Annotated[
        str | None,
        Query(description="an event type, or a prefix like order.*", pattern=TYPE_PATTERN),
    ] = None,
    aggregateId: Annotated[str | None, Query(max_length=128)] = None,
    correlationId: Annotated[str | None, Query(max_length=128)] = None,
    from_: Annotated[
        str | None,
        Query(alias="from", description="ISO-8601", json_schema_extra={"format": "date-time"}),
    ] = None,
    to: Annotated[
        str | None, Query(description="ISO-8601", json_schema_extra={"format": "date-time"})
    ] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> JSONResponse:
    # The declared parameters document the API; parsing is ours so every bad one is named.
    flt, page, limit = parse_list_query(request)
    if not user.is_admin:
        own = str(user.id)
        if flt.user_id not in (None, own):
            return paginated("events", [], page=page, limit=limit, total=0)
        flt = EventFilter(**{**flt.__dict__, "user_id": own, "exclude_types": ADMIN_ONLY_EVENTS})
    items, total = find_events(flt, page=page, limit=limit)
    shown = events_view(items, admin=user.is_admin)
    return paginated("events", shown, page=page, limit=limit, total=total)


@router.get("/stats", summary="Counts by type and hour, handler failures, outbox lag")
def event_stats(_: AdminUser) -> JSONResponse:
    failures = {k: int(v) for k, v in (get_redis().hgetall(FAILURES_KEY) or {}).items()}
    by_type = counts_by_type()
    return success(
        {
            "stats": {
                "total": sum(by_type.values()),
                "countsByType": by_type,
                "countsByHour": counts_by_hour(),
                "handlerFailures": failures,
                "deadLetters": DeadLetter.counts(),
                "outbox": outbox_lag(get_db()),
                "handlers": handler_subscriptions(),
            }
        }
    )


def _check(fn: Any) -> dict[str, Any]:
    try:
        detail = fn() or {}
        return {"status": "ok", **detail}
    except Exception as exc:  # each check reports its own failure
        return {"status": "fail", "error": f"{type(exc).__name__}: {exc}"[:200]}


@router.get("/health", summary="Event bus, store and handlers: 200, or 503 naming what is down")
def event_health(settings: AppSettings, is_admin: ViewerIsAdmin) -> JSONResponse:
    timeout_s = settings.health_check_timeout_ms / 1000
    checks = {
        "bus": _check(lambda: ping_redis(timeout_s)),
        "store": _check(lambda: ping_mongo(settings.health_check_timeout_ms)),
    }
    if checks["store"]["status"] == "ok":
        checks["handlers"] = _check(
            lambda: {
                "registered": sorted(handler_subscriptions()),
                "deadLetters": DeadLetter.unresolved_count(),
                "outbox": outbox_lag(get_db()),
            }
        )
        if checks["handlers"].get("deadLetters"):
            checks["handlers"]["status"] = "degraded"
    failing = sorted(name for name, c in checks.items() if c["status"] == "fail")
    degraded = any(c["status"] != "ok" for c in checks.values())
    if not is_admin:
        # Anonymous callers learn the status per part, never error text or handler names.
        checks = {name: {"status": c["status"]} for name, c in checks.items()}
    if failing:
        body = failure_body(503, "EVENTS_UNAVAILABLE", "unavailable: " + ", ".join(failing))
        body["data"] = {"checks": checks}
        return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})
    return success({"status": "degraded" if degraded else "ok", "checks": checks})


@router.get(
    "/correlation/{correlation_id}",
    summary="Every event of one correlation id, oldest first, with causation links",
    responses=error_responses(401, 404),
)
def correlation(correlation_id: str, user: CurrentUser) -> JSONResponse:
    events = correlation_chain(correlation_id, None if user.is_admin else str(user.id))
    if not events:
        raise ApiError(404, "CORRELATION_NOT_FOUND", "no events with this correlation id")
    shown = events_view(events, admin=user.is_admin)
    return success({"correlationId": correlation_id, "events": shown})


class ReplayRequest(ApiModel):
    type: str | None = Field(default=None, description="an event type or a prefix like order.*")
    aggregate_id: str | None = Field(default=None, max_length=128)
    correlation_id: str | None = Field(default=None, max_length=128)
    user_id: str | None = Field(default=None, max_length=128)
    from_: datetime | None = Field(default=None, alias="from")
    to: datetime | None = None
    handlers: list[str] | None = Field(default=None, description="default: every handler")
    dry_run: bool = False


def _replay_filter(body: ReplayRequest, known: dict[str, list[str] | None]) -> EventFilter:
    errors: list[dict[str, str]] = []
    if body.type and (problem := type_error(body.type)):
        errors.append({"field": "type", "message": problem})
    for name in body.handlers or []:
        if name not in known:
            errors.append({"field": "handlers", "message": f"unknown handler {name!r}"})
    moments = [_utc(body.from_), _utc(body.to)]
    if moments[0] and moments[1] and moments[0] > moments[1]:
        errors.append({"field": "to", "message": "must not be before from"})
    flt = EventFilter(
        type=body.type,
        aggregate_id=body.aggregate_id,
        correlation_id=body.correlation_id,
        user_id=body.user_id,
        occurred_from=moments[0],
        occurred_to=moments[1],
    )
    if flt.is_empty():
        errors.append({"field": "filter", "message": "give at least one filter"})
    if errors:
        raise _bad(errors)
    return flt


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@router.post(
    "/replay",
    summary="Re-run handlers for the matching events (dryRun: count only)",
    responses=error_responses(400, 401, 403),
)
def replay(body: ReplayRequest, _: AdminUser) -> JSONResponse:
    known = handler_subscriptions()
    flt = _replay_filter(body, known)
    by_type = counts_by_type(flt)
    wanted = body.handlers or sorted(known)
    runs = {
        name: sum(n for t, n in by_type.items() if known[name] is None or t in known[name])
        for name in wanted
    }
    data = {
        "dryRun": body.dry_run,
        "matched": count_matching(flt),
        "handlerRuns": runs,
        "filter": flt.to_json(),
    }
    if body.dry_run:
        return success(data)
    enqueue_replay(flt.to_json(), body.handlers)
    return success(data, message="replay enqueued", status_code=202)


@router.get("/dead-letters", summary="Handler and compensation runs that kept failing")
def dead_letters(
    _: AdminUser,
    resolved: bool | None = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> JSONResponse:
    items, total = DeadLetter.page(resolved=resolved, page=page, limit=limit)
    return paginated(
        "deadLetters", [d.to_public() for d in items], page=page, limit=limit, total=total
    )


@router.post(
    "/dead-letters/{dead_letter_id}/retry",
    summary="Run a dead-lettered unit of work again (fresh retries)",
    responses=error_responses(401, 403, 404),
)
def retry_dead_letter(dead_letter_id: str, _: AdminUser) -> JSONResponse:
    dead = DeadLetter.get(dead_letter_id)
    if dead is None:
        raise ApiError(404, "DEAD_LETTER_NOT_FOUND", "dead letter not found")
    dead.mark_retried()
    enqueue_task(dead.task, **dead.kwargs)
    return success({"deadLetter": dead.to_public()}, message="retry enqueued", status_code=202)
