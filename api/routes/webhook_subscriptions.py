"""Outgoing webhook subscriptions (admin): which events go where, and each delivery's log."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import Field, field_validator

from api.deps import AdminUser, AppSettings, DataKeys
from api.envelope import ApiError, not_found, paginated, success
from api.responses import error_responses
from api.schemas import ApiModel
from core.targets import target_refusal
from models.outgoing_webhook import WebhookDelivery, WebhookSubscription
from tasks import dispatch
from workflows.outgoing_webhooks import MAX_PATTERNS, pattern_error

router = APIRouter(prefix="/api/webhook-subscriptions", tags=["webhooks"])
DELIVER = "webhooks.deliver"


def _patterns(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    cleaned = list(dict.fromkeys(v.strip() for v in value))
    for pattern in cleaned:
        problem = pattern_error(pattern)
        if problem:
            raise ValueError(f"{pattern!r}: {problem}")
    return cleaned


class SubscriptionCreate(ApiModel):
    url: str = Field(min_length=8, max_length=2000)
    event_types: list[str] = Field(min_length=1, max_length=MAX_PATTERNS)
    description: str = Field(default="", max_length=300)

    _check_patterns = field_validator("event_types")(_patterns)


class SubscriptionUpdate(ApiModel):
    url: str | None = Field(default=None, min_length=8, max_length=2000)
    event_types: list[str] | None = Field(default=None, min_length=1, max_length=MAX_PATTERNS)
    description: str | None = Field(default=None, max_length=300)
    active: bool | None = None

    _check_patterns = field_validator("event_types")(_patterns)


def _refuse_target(url: str, settings) -> None:
    problem = target_refusal(url, settings)
    if problem:
        raise ApiError(
            400,
            "WEBHOOK_TARGET_REFUSED",
            f"this URL cannot receive webhooks: {problem}",
            [{"field": "url", "message": problem}],
        )


def _load(subscription_id: str) -> WebhookSubscription:
    sub = WebhookSubscription.get(subscription_id)
    if sub is None:
        raise not_found("webhook subscription")
    return sub


@router.post(
    "",
    status_code=201,
    summary="Subscribe a URL to event types (`order.*` wildcards); the secret is shown once",
    responses=error_responses(400, 401, 403),
)
def create_subscription(
    body: SubscriptionCreate, admin: AdminUser, settings: AppSettings, keyring: DataKeys
) -> JSONResponse:
    _refuse_target(body.url, settings)
    sub, secret = WebhookSubscription.create(
        url=body.url,
        event_types=body.event_types,
        description=body.description,
        created_by=str(admin.id),
        keyring=keyring,
    )
    return success(
        {"subscription": sub.public(), "secret": secret},
        message="keep the secret: it is shown only now",
        status_code=201,
        headers={"Location": f"/api/webhook-subscriptions/{sub.id}"},
    )


@router.get("", summary="Every subscription", responses=error_responses(401, 403))
def list_subscriptions(
    _: AdminUser,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> JSONResponse:
    cursor = WebhookSubscription.objects()
    items = list(cursor.order_by("-created_at").skip((page - 1) * limit).limit(limit))
    return paginated(
        "subscriptions",
        [s.public() for s in items],
        page=page,
        limit=limit,
        total=cursor.count(),
    )


@router.get(
    "/{subscription_id}", summary="One subscription", responses=error_responses(401, 403, 404)
)
def get_subscription(subscription_id: str, _: AdminUser) -> JSONResponse:
    return success({"subscription": _load(subscription_id).public()})


@router.patch(
    "/{subscription_id}",
    summary="Change the URL, event types, description; `active: true` re-enables it",
    responses=error_responses(400, 401, 403, 404),
)
def update_subscription(
    subscription_id: str, body: SubscriptionUpdate, _: AdminUser, settings: AppSettings
) -> JSONResponse:
    _load(subscription_id)
    fields = {
        name: value
        for name, value in (
            ("url", body.url),
            ("eventTypes", body.event_types),
            ("description", body.description),
            ("active", body.active),
        )
        if value is not None
    }
    if not fields:
        raise ApiError(
            400,
            "VALIDATION_ERROR",
            "nothing to change",
            [{"field": "body", "message": "send url, eventTypes, description or active"}],
        )
    if body.url is not None:
        _refuse_target(body.url, settings)
    sub = WebhookSubscription.update_settings(subscription_id, fields)
    if sub is None:
        raise not_found("webhook subscription")
    return success({"subscription": sub.public()})


@router.delete(
    "/{subscription_id}",
    summary="Delete a subscription and its delivery log",
    responses=error_responses(401, 403, 404),
)
def delete_subscription(subscription_id: str, _: AdminUser) -> JSONResponse:
    if not WebhookSubscription.delete_with_deliveries(subscription_id):
        raise not_found("webhook subscription")
    return success({"id": subscription_id}, message="subscription deleted")


@router.get(
    "/{subscription_id}/deliveries",
    summary="The subscription's deliveries, newest first, each with its attempts",
    responses=error_responses(400, 401, 403, 404),
)
def list_deliveries(
    subscription_id: str,
    _: AdminUser,
    status: Literal["pending", "succeeded", "failed"] | None = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> JSONResponse:
    _load(subscription_id)
    items, total = WebhookDelivery.page_for(subscription_id, status=status, page=page, limit=limit)
    return paginated("deliveries", [d.public() for d in items], page=page, limit=limit, total=total)


@router.post(
    "/{subscription_id}/deliveries/{delivery_id}/redeliver",
    status_code=202,
    summary="Send a delivery's event again, as a new delivery (its own id)",
    responses=error_responses(401, 403, 404, 409),
)
def redeliver(subscription_id: str, delivery_id: str, _: AdminUser) -> JSONResponse:
    sub = _load(subscription_id)
    original = WebhookDelivery.objects(id=delivery_id, subscription_id=subscription_id).first()
    if original is None:
        raise not_found("webhook delivery")
    if not sub.active:
        raise ApiError(
            409, "SUBSCRIPTION_DISABLED", "re-enable the subscription first (PATCH active: true)"
        )
    copy = WebhookDelivery.redeliver(original)
    dispatch.enqueue_task(DELIVER, subscription_id=sub.id, aggregate_id=copy.aggregate_id)
    return success({"delivery": copy.public()}, message="redelivery queued", status_code=202)
