"""Users: register, login, logout, and the caller's own profile (API.md, Users)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BeforeValidator, EmailStr, Field, StringConstraints

from api.auth_pool import run_auth
from api.deps import AppSettings, CurrentClaims, CurrentUser, DataKeys, Revocations
from api.envelope import ApiError, success
from api.ratelimit import LoginLockout, ip_key, login_key, rate_limit
from api.responses import error_responses
from api.routes.account import send_verification
from api.schemas import ApiModel, PublicModel
from core.security import create_access_token, now_ms
from core.settings import Settings
from models.user import UNSET, EmailTaken, User, WrongPassword
from monitoring.logging import get_logger
from tasks.dispatch import enqueue_outbox

router = APIRouter(prefix="/api/users", tags=["users"])
log = get_logger(__name__)

# Shown to clients; the same for an unknown email, a wrong password and a closed account.
INVALID_CREDENTIALS = "invalid email or password"


# A name is words (letters, digits, ' . , -) separated by single spaces; the pattern is the
# whole rule, so the schema says exactly what is accepted (surrounding blanks are stripped,
# a blank name is refused by both).
NAME_PATTERN = r"^\s*[\w'’.,\-]+(?: [\w'’.,\-]+)*\s*$"
NAME_MAX = 100


def _not_too_long(value: object) -> object:
    # Before stripping: the schema's maxLength counts what the client sent.
    if isinstance(value, str) and len(value) > NAME_MAX:
        raise ValueError(f"at most {NAME_MAX} characters")
    return value


Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=NAME_MAX, pattern=NAME_PATTERN),
    BeforeValidator(_not_too_long),
]
# What email-validator refuses besides the address's syntax (its special-use names, and a
# domain without a dot), said in the schema so generated "valid" addresses are valid here.
_SPECIAL_USE = "(?i:arpa|invalid|local|localhost|onion|test)"
EMAIL_PATTERN = rf"^[^@\s]+@(?!(?:[^@\s]*\.)?{_SPECIAL_USE}$)[^@\s]+\.[^@\s]+$"
Email = Annotated[EmailStr, Field(max_length=320, json_schema_extra={"pattern": EMAIL_PATTERN})]
# Passwords are taken byte for byte: no whitespace stripping.
Password = Annotated[str, StringConstraints(strip_whitespace=False, min_length=8, max_length=128)]
AnyPassword = Annotated[
    str, StringConstraints(strip_whitespace=False, min_length=1, max_length=128)
]
Phone = Annotated[str, StringConstraints(pattern=r"^\+?[1-9][0-9]{6,14}$")]


class UserRegister(ApiModel):
    email: Email
    password: Password
    first_name: Name
    last_name: Name
    phone: Phone | None = None


class UserLogin(ApiModel):
    # Any address-shaped text: one that could never be registered simply does not log in.
    email: Annotated[str, StringConstraints(max_length=320, pattern=r"^[^@]+@[^@]+$")]
    password: AnyPassword


class UserUpdate(ApiModel):
    first_name: Name | None = Field(default=None, description="omit or null: unchanged")
    last_name: Name | None = Field(default=None, description="omit or null: unchanged")
    phone: Phone | None = Field(default=None, description="omit: unchanged; null: removed")
    password: Password | None = Field(default=None, description="needs currentPassword")
    current_password: AnyPassword | None = None


class UserPublic(PublicModel):
    id: str
    email: str
    first_name: str
    last_name: str
    phone: str | None = Field(description="only to the user themself and admins")
    role: Literal["customer", "admin"]
    active: bool
    email_verified: bool = Field(default=False, description="the emailed link was followed")
    stripe_customer_id: str | None
    created_at: datetime


class UserData(PublicModel):
    user: UserPublic


class AuthData(UserData):
    token: str


class ProfileData(UserData):
    token: str | None = Field(default=None, description="present after a password change")


class _Success(PublicModel):
    status: Literal["success"]
    message: str | None = None


class UserEnvelope(_Success):
    data: UserData


class AuthEnvelope(_Success):
    data: AuthData


class ProfileEnvelope(_Success):
    data: ProfileData


class MessageEnvelope(_Success):
    data: dict[str, Any]


def _token_for(user: User, settings: Settings, issued_ms: int | None = None) -> str:
    token, _ = create_access_token(str(user.id), user.role, settings, issued_ms=issued_ms)
    return token


def _publish(user: User) -> None:
    # The beat sweep dispatches outboxes too, so a broker hiccup only delays the events.
    try:
        enqueue_outbox("users", str(user.id))
    except Exception as exc:
        log.warning("outbox_enqueue_failed", kind="users", user_id=str(user.id), error=str(exc))


@router.post(
    "/register",
    status_code=201,
    response_model=AuthEnvelope,
    responses=error_responses(400, 409, 413, 429),
    dependencies=[Depends(rate_limit("rate_limit_register", ip_key))],
    summary="Create a customer account; answers with a token",
)
async def register(body: UserRegister, settings: AppSettings, keyring: DataKeys) -> JSONResponse:
    # The argon2 hash runs in the bounded auth pool, never on the shared threadpool.
    return await run_auth(_register, body, settings, keyring)


def _register(body: UserRegister, settings: AppSettings, keyring: DataKeys) -> JSONResponse:
    try:
        user = User.register(
            email=str(body.email),
            password=body.password,
            first_name=body.first_name,
            last_name=body.last_name,
            phone=body.phone,
            keyring=keyring,
        )
    except EmailTaken as exc:
        raise ApiError(
            409,
            "EMAIL_TAKEN",
            "an account with this email already exists",
            [{"field": "email", "message": "already registered"}],
        ) from exc
    _publish(user)
    send_verification(user, settings)
    log.info("user_registered", user_id=str(user.id))
    data = {"user": user.to_public(user, keyring), "token": _token_for(user, settings)}
    return success(data, message="registered", status_code=201)


@router.post(
    "/login",
    response_model=AuthEnvelope,
    responses=error_responses(400, 401, 413, 429),
    dependencies=[
        Depends(rate_limit("rate_limit_login_client", ip_key)),
        Depends(rate_limit("rate_limit_login", login_key)),
    ],
    summary="Exchange email and password for a token",
)
async def login(
    body: UserLogin, request: Request, settings: AppSettings, keyring: DataKeys
) -> JSONResponse:
    # The argon2 verify runs in the bounded auth pool, never on the shared threadpool.
    return await run_auth(_login, body, request, settings, keyring)


def _login(
    body: UserLogin, request: Request, settings: AppSettings, keyring: DataKeys
) -> JSONResponse:
    lockout: LoginLockout = request.app.state.login_lockout
    email = str(body.email)
    locked = lockout.locked_for(email)
    if locked is not None:
        raise ApiError(
            429,
            "LOGIN_LOCKED",
            f"too many failed logins for this account, retry in {locked} s",
            headers={"Retry-After": str(locked)},
        )
    user = User.authenticate(email, body.password)
    if user is None:
        lockout.failed(email)
        log.info("login_failed")
        raise ApiError(401, "INVALID_CREDENTIALS", INVALID_CREDENTIALS)
    lockout.succeeded(email)
    _publish(user)
    log.info("user_login", user_id=str(user.id))
    data = {"user": user.to_public(user, keyring), "token": _token_for(user, settings)}
    return success(data)


@router.post(
    "/logout",
    response_model=MessageEnvelope,
    responses=error_responses(401, 429),
    summary="Revoke the token used for this request",
)
def logout(user: CurrentUser, claims: CurrentClaims, revocations: Revocations) -> JSONResponse:
    revocations.revoke(claims.jti, claims.exp, str(user.id))
    log.info("user_logout", user_id=str(user.id))
    return success({}, message="logged out")


@router.get(
    "/profile",
    response_model=UserEnvelope,
    responses=error_responses(401, 429),
    summary="The caller's profile",
)
def get_profile(user: CurrentUser, keyring: DataKeys) -> JSONResponse:
    return success({"user": user.to_public(user, keyring)})


@router.patch(
    "/profile",
    response_model=ProfileEnvelope,
    responses=error_responses(400, 401, 413, 429),
    summary="Change names, phone or password (password needs currentPassword)",
)
def update_profile(
    body: UserUpdate,
    user: CurrentUser,
    settings: AppSettings,
    revocations: Revocations,
    keyring: DataKeys,
) -> JSONResponse:
    if body.password is not None and body.current_password is None:
        raise ApiError(
            400,
            "VALIDATION_ERROR",
            "invalid request: currentPassword",
            [{"field": "currentPassword", "message": "required to change the password"}],
        )
    try:
        changed = user.update_profile(
            first_name=body.first_name if body.first_name is not None else UNSET,
            last_name=body.last_name if body.last_name is not None else UNSET,
            phone=body.phone if "phone" in body.model_fields_set else UNSET,
            new_password=body.password,
            current_password=body.current_password,
            keyring=keyring,
        )
    except WrongPassword as exc:
        raise ApiError(
            400,
            "INVALID_CURRENT_PASSWORD",
            "the current password is wrong",
            [{"field": "currentPassword", "message": "does not match"}],
        ) from exc
    data: dict[str, Any] = {"user": user.to_public(user, keyring)}
    if "password" in changed:
        # Every token issued before this moment dies; the fresh one is issued at it.
        cut_off = now_ms()
        revocations.revoke_all_before(str(user.id), cut_off)
        data["token"] = _token_for(user, settings, issued_ms=cut_off)
    if changed:
        _publish(user)
        log.info("user_updated", user_id=str(user.id), fields=changed)
    return success(data, message="profile updated" if changed else "nothing to change")


@router.delete(
    "/profile",
    response_model=MessageEnvelope,
    responses=error_responses(401, 429),
    summary="Deactivate the caller's account and revoke its tokens",
)
def delete_profile(
    user: CurrentUser, claims: CurrentClaims, revocations: Revocations
) -> JSONResponse:
    user.deactivate()
    # +1 ms: also cut a token minted in this very millisecond.
    revocations.revoke_all_before(str(user.id), now_ms() + 1)
    revocations.revoke(claims.jti, claims.exp, str(user.id))
    _publish(user)
    log.info("user_deactivated", user_id=str(user.id))
    return success({}, message="account deactivated")
