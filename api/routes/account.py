"""Account links by email: password reset and email verification (single-use, expiring).

The request for a reset answers the same 202 whether or not the email has an account, so
it tells an attacker nothing the login form would not; the email itself is sent by a
worker (``mail.send``), never from the request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import EmailStr, StringConstraints

from api.deps import AppSettings, DataKeys, Revocations
from api.envelope import ApiError, success
from api.ratelimit import login_key, rate_limit
from api.responses import error_responses
from api.schemas import ApiModel
from core.security import create_access_token, now_ms
from core.settings import Settings
from models.account_token import RESET, VERIFY, AccountToken
from models.user import User
from monitoring.logging import get_logger
from tasks.dispatch import enqueue_outbox, enqueue_task

router = APIRouter(prefix="/api/users", tags=["users"])
log = get_logger(__name__)
SEND_MAIL = "mail.send"
RESET_SENT = "if an account uses this email, a reset link is on its way"
Token = Annotated[
    str, StringConstraints(min_length=20, max_length=200, pattern=r"^[A-Za-z0-9_\-]+$")
]
NewPassword = Annotated[
    str, StringConstraints(strip_whitespace=False, min_length=8, max_length=128)
]


class ResetRequest(ApiModel):
    email: EmailStr


class ResetConfirm(ApiModel):
    token: Token
    password: NewPassword


class VerifyEmail(ApiModel):
    token: Token


def _link(settings: Settings, view: str, token: str) -> str:
    return f"{settings.public_base_url.rstrip('/')}/#/{view}?token={token}"


def _mail(template: str, user: User, link: str, key: str, valid_minutes: int = 0) -> None:
    enqueue_task(
        SEND_MAIL,
        key=key,
        template=template,
        user_id=str(user.id),
        extra={"link": link, "valid_minutes": valid_minutes},
    )


def send_verification(user: User, settings: Settings) -> None:
    """Email a fresh verification link (registration); a broker hiccup only logs."""
    if not settings.smtp_host:
        return
    token = AccountToken.issue(str(user.id), VERIFY, settings.email_verification_ttl_seconds)
    try:
        _mail("verify_email", user, _link(settings, "verify-email", token), f"verify:{token[:16]}")
    except Exception as exc:  # the account exists; the user can ask for a new link
        log.warning("verification_mail_not_queued", user_id=str(user.id), error=str(exc))


@router.post(
    "/password-reset",
    status_code=202,
    summary="Email a single-use password reset link (the same answer for unknown emails)",
    responses=error_responses(400, 413, 429, 503),
    dependencies=[Depends(rate_limit("rate_limit_login", login_key))],
)
def request_reset(body: ResetRequest, settings: AppSettings) -> JSONResponse:
    user = User.by_email(str(body.email))
    if user is not None and user.active:
        ttl = settings.password_reset_ttl_seconds
        token = AccountToken.issue(str(user.id), RESET, ttl)
        _mail(
            "password_reset",
            user,
            _link(settings, "reset-password", token),
            f"reset:{token[:16]}",
            valid_minutes=ttl // 60,
        )
        log.info("password_reset_requested", user_id=str(user.id))
    return success({}, message=RESET_SENT, status_code=202)


@router.post(
    "/password-reset/confirm",
    summary="Set a new password with the emailed token: logs in, ends every other session",
    responses=error_responses(400, 413, 429),
    dependencies=[Depends(rate_limit("rate_limit_login", login_key))],
)
def confirm_reset(
    body: ResetConfirm, settings: AppSettings, revocations: Revocations, keyring: DataKeys
) -> JSONResponse:
    user_id = AccountToken.use(body.token, RESET)
    user = User.by_id(user_id) if user_id else None
    if user is None or not user.active:
        raise ApiError(
            400,
            "RESET_TOKEN_INVALID",
            "this reset link is unknown, used or expired: ask for a new one",
            [{"field": "token", "message": "unknown, used or expired"}],
        )
    user.set_password(body.password)
    cut_off = now_ms()  # every token issued before this moment dies
    revocations.revoke_all_before(str(user.id), cut_off)
    token, _ = create_access_token(str(user.id), user.role, settings, issued_ms=cut_off)
    enqueue_outbox("users", str(user.id))
    log.info("password_reset_done", user_id=str(user.id))
    return success(
        {"user": user.to_public(user, keyring), "token": token}, message="password changed"
    )


@router.post(
    "/verify-email",
    summary="Confirm the account's email with the emailed token",
    responses=error_responses(400, 413, 429),
)
def verify_email(body: VerifyEmail, keyring: DataKeys) -> JSONResponse:
    user_id = AccountToken.use(body.token, VERIFY)
    user = User.by_id(user_id) if user_id else None
    if user is None:
        raise ApiError(
            400,
            "VERIFICATION_TOKEN_INVALID",
            "this link is unknown, used or expired",
            [{"field": "token", "message": "unknown, used or expired"}],
        )
    user.mark_email_verified()
    enqueue_outbox("users", str(user.id))
    return success({"user": user.to_public(user, keyring)}, message="email verified")
