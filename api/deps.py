"""Request dependencies: who is calling (Bearer JWT → user), roles, ownership, app services.

Routes declare identity with the aliases: ``user: CurrentUser``, ``admin: AdminUser``,
``claims: CurrentClaims``. A resource that exists but is not the caller's answers 404
through ``ensure_owner_or_admin``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.envelope import ApiError, not_found
from api.scopes import required_scope
from core.crypto import KeyRing
from core.revocation import RevocationStore
from core.security import InvalidToken, TokenClaims, decode_access_token
from core.settings import Settings, get_settings
from models.api_key import KEY_PREFIX as API_KEY_PREFIX
from models.api_key import ApiKey
from models.user import User

bearer_scheme = HTTPBearer(
    auto_error=False,
    description="JWT from POST /api/users/register or /api/users/login, or an API key (oms_…)",
)


def install_security(app: FastAPI, settings: Settings) -> None:
    """Hold the app's settings, revocation store and data keys on app.state (one per app)."""
    app.state.settings = settings
    app.state.revocations = RevocationStore.from_settings(settings)
    app.state.keyring = KeyRing.from_settings(settings)


def get_app_settings(request: Request) -> Settings:
    return getattr(request.app.state, "settings", None) or get_settings()


def get_revocations(request: Request) -> RevocationStore:
    return request.app.state.revocations


def get_keyring(request: Request) -> KeyRing:
    return request.app.state.keyring


AppSettings = Annotated[Settings, Depends(get_app_settings)]
Revocations = Annotated[RevocationStore, Depends(get_revocations)]
DataKeys = Annotated[KeyRing, Depends(get_keyring)]


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "UNAUTHORIZED", message, headers={"WWW-Authenticate": "Bearer"})


def authenticate_token(
    token: str, settings: Settings, revocations: RevocationStore
) -> tuple[User, TokenClaims]:
    """Decode, check revocation (jti and tokens-before), load the active user; else 401.

    Also for the WebSocket's auth message:
    ``authenticate_token(token, ws.app.state.settings, ws.app.state.revocations)``.
    """
    try:
        claims = decode_access_token(token, settings)
    except InvalidToken as exc:
        raise unauthorized(str(exc)) from exc
    if revocations.is_revoked(claims.jti, claims.sub, claims.issued_ms, claims.exp):
        raise unauthorized("token revoked")
    user = User.by_id(claims.sub)
    if user is None or not user.active:
        raise unauthorized("account not found or deactivated")
    return user, claims


def authenticate_api_key(request: Request, token: str) -> User:
    """A machine client's key: the admin who made it, limited to the key's scopes."""
    key = ApiKey.active_for(token)
    if key is None:
        raise unauthorized("unknown or revoked API key")
    user = User.by_id(key.created_by)
    if user is None or not user.active or not user.is_admin:
        raise unauthorized("the API key's owner is no longer an active admin")
    route = request.scope.get("route")
    needed = required_scope(request.method, getattr(route, "path", request.url.path))
    if needed is None or needed not in key.scopes:
        raise ApiError(
            403,
            "INSUFFICIENT_SCOPE",
            f"this API key lacks the scope {needed}"
            if needed
            else "API keys cannot call this route",
        )
    request.state.api_key = key
    return user


def get_current_user(
    request: Request,
    settings: AppSettings,
    revocations: Revocations,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> User:
    if credentials is None or not credentials.credentials:
        raise unauthorized("authentication required: send Authorization: Bearer <token>")
    if credentials.credentials.startswith(API_KEY_PREFIX):
        return authenticate_api_key(request, credentials.credentials)
    user, claims = authenticate_token(credentials.credentials, settings, revocations)
    # FastAPI caches this dependency per request; the claims ride along for logout.
    request.state.token_claims = claims
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def get_token_claims(request: Request, _: CurrentUser) -> TokenClaims:
    return request.state.token_claims


CurrentClaims = Annotated[TokenClaims, Depends(get_token_claims)]


def get_admin_user(user: CurrentUser) -> User:
    if not user.is_admin:
        raise ApiError(403, "FORBIDDEN", "admin role required")
    return user


AdminUser = Annotated[User, Depends(get_admin_user)]


def viewer_is_admin(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> bool:
    """True for a valid, unrevoked admin token; anything else (none, bad, customer) is False.

    For routes open to anyone that show admins more (health). No user lookup: the signed
    role claim is trusted because every role change and deactivation revokes the
    account's tokens, and revocation is answered by Redis even while Mongo is down.
    """
    if credentials is None or not credentials.credentials:
        return False
    settings = get_app_settings(request)
    try:
        claims = decode_access_token(credentials.credentials, settings)
        if claims.role != "admin":
            return False
        revocations = get_revocations(request)
        return not revocations.is_revoked(claims.jti, claims.sub, claims.issued_ms, claims.exp)
    except Exception:  # invalid token, or revocation unknowable: the anonymous view
        return False


ViewerIsAdmin = Annotated[bool, Depends(viewer_is_admin)]


def ensure_owner_or_admin(user: User, owner_id: str | None, what: str) -> None:
    """Admins see everything; a customer asking for someone else's resource gets 404
    ``<WHAT>_NOT_FOUND``, exactly as if it did not exist."""
    if user.is_admin:
        return
    if owner_id is None or str(owner_id) != str(user.id):
        raise not_found(what)


# The ``Idempotency-Key`` request header (POST /api/orders, POST /api/payments/refund): the
# same key with the same body replays the first answer; with another body → 409.
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$"),
]
