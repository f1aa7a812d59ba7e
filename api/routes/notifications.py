"""The caller's notifications (order updates; low-stock alerts for admins), newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from api.deps import CurrentUser
from api.envelope import ApiError, paginated, success
from api.responses import error_responses
from models.notification import Notification

router = APIRouter(prefix="/api/notifications", tags=["notifications"])


@router.get("", summary="My notifications, newest first", responses=error_responses(400, 401))
def list_notifications(
    user: CurrentUser,
    unread: bool = False,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> JSONResponse:
    items, total = Notification.page_for(str(user.id), unread_only=unread, page=page, limit=limit)
    return paginated(
        "notifications", [n.to_public() for n in items], page=page, limit=limit, total=total
    )


@router.post(
    "/read-all",
    summary="Mark all my notifications read (idempotent)",
    responses=error_responses(401),
)
def mark_all_read(user: CurrentUser) -> JSONResponse:
    changed = Notification.mark_all_read(str(user.id))
    return success({"marked": changed}, message=f"{changed} marked read")


@router.post(
    "/{notification_id}/read",
    summary="Mark one of my notifications read (idempotent)",
    responses=error_responses(401, 404),
)
def mark_read(notification_id: str, user: CurrentUser) -> JSONResponse:
    # Someone else's notification answers 404, admins included: notifications are personal.
    notification = Notification.mark_read(notification_id, str(user.id))
    if notification is None:
        raise ApiError(404, "NOTIFICATION_NOT_FOUND", "notification not found")
    return success({"notification": notification.to_public()})
