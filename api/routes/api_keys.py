"""API keys for machine clients (admin): create (shown once), list, revoke."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import Field

from api.deps import AdminUser
from api.envelope import not_found, paginated, success
from api.responses import error_responses
from api.schemas import ApiModel
from api.scopes import SCOPES
from models.api_key import ApiKey

router = APIRouter(prefix="/api/api-keys", tags=["api keys"])
Scope = Literal[SCOPES]  # type: ignore[valid-type]


class ApiKeyCreate(ApiModel):
    name: str = Field(min_length=1, max_length=100)
    scopes: list[Scope] = Field(min_length=1, max_length=len(SCOPES))


@router.post(
    "",
    status_code=201,
    summary="Create a scoped API key; the key is shown only in this answer",
    responses=error_responses(400, 401, 403),
)
def create_key(body: ApiKeyCreate, admin: AdminUser) -> JSONResponse:
    key, token = ApiKey.create(body.name, sorted(set(body.scopes)), str(admin.id))
    return success(
        {"apiKey": key.public(), "key": token},
        message="keep the key: it is shown only now",
        status_code=201,
        headers={"Location": f"/api/api-keys/{key.id}"},
    )


@router.get("", summary="Every API key (never the key itself)", responses=error_responses(401, 403))
def list_keys(
    _: AdminUser,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> JSONResponse:
    cursor = ApiKey.objects()
    items = list(cursor.order_by("-created_at").skip((page - 1) * limit).limit(limit))
    return paginated(
        "apiKeys", [k.public() for k in items], page=page, limit=limit, total=cursor.count()
    )


@router.delete(
    "/{key_id}",
    summary="Revoke an API key (at once, for good)",
    responses=error_responses(401, 403, 404),
)
def revoke_key(key_id: str, _: AdminUser) -> JSONResponse:
    key = ApiKey.objects(id=key_id).first()
    if key is None:
        raise not_found("API key")
    ApiKey.revoke(key_id)
    key.reload()
    return success({"apiKey": key.public()}, message="revoked")
