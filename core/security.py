"""Password hashing (argon2id via pwdlib) and access tokens (JWT HS256 via PyJWT)."""

from __future__ import annotations

import math
import os
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache

import jwt
from pwdlib import PasswordHash
from pwdlib.exceptions import UnknownHashError
from pwdlib.hashers.argon2 import Argon2Hasher

from core.settings import Settings, get_settings

JWT_ALGORITHM = "HS256"
REQUIRED_CLAIMS = ("sub", "role", "jti", "iat", "exp", "iss", "aud")

# argon2id at OWASP's "m=12 MiB, t=3, p=1" (one of its equivalent minimum settings; see
# the README's "Auth under load"): ~28 ms of one core here, against ~210 ms of CPU for
# argon2-cffi's defaults (64 MiB, t=3, p=4). Hashes made with other parameters still verify
# and are rehashed at the next login (verify_and_update).
ARGON2_PARAMS = {"time_cost": 3, "memory_cost": 12288, "parallelism": 1}
_password_hash = PasswordHash((Argon2Hasher(**ARGON2_PARAMS),))


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


# argon2 is pure CPU: more hashes at once than cores only makes each one slower (and starves
# everything else), so at most one per core runs; the others wait their turn.
HASH_SLOTS = _cores()
_hash_slots = threading.BoundedSemaphore(HASH_SLOTS)


def hash_password(password: str) -> str:
    with _hash_slots:
        return _password_hash.hash(password)


@lru_cache
def _dummy_hash() -> str:
    # Verified against when the account is unknown, so both paths cost one argon2 run.
    return hash_password(secrets.token_urlsafe(16))


def verify_password(password: str, password_hash: str | None) -> tuple[bool, str | None]:
    """Check a password in constant work; returns (valid, new_hash_if_params_changed).

    With ``password_hash=None`` (unknown account) a dummy hash is verified and the
    answer is always False, so timing does not reveal whether the account exists.
    """
    dummy = _dummy_hash()  # (made outside the slot: it takes one itself)
    with _hash_slots:
        if password_hash is None:
            _password_hash.verify(password, dummy)
            return False, None
        try:
            return _password_hash.verify_and_update(password, password_hash)
        except UnknownHashError:
            _password_hash.verify(password, dummy)
            return False, None


class InvalidToken(Exception):
    """A token that is missing, malformed, tampered with, or expired; message says which."""


@dataclass(frozen=True)
class TokenClaims:
    sub: str
    role: str
    jti: str
    iat: float
    exp: int

    @property
    def issued_ms(self) -> int:
        return round(self.iat * 1000)


def now_ms() -> int:
    """Current time in whole milliseconds: the resolution of iat and of revocation cut-offs."""
    return math.floor(time.time() * 1000)


def create_access_token(
    user_id: str,
    role: str,
    settings: Settings | None = None,
    *,
    issued_ms: int | None = None,
) -> tuple[str, TokenClaims]:
    """Sign a token for a user. iat has millisecond precision so a "tokens issued before
    T" cut-off can revoke older tokens while sparing the one issued at T."""
    settings = settings or get_settings()
    issued = issued_ms if issued_ms is not None else now_ms()
    claims = TokenClaims(
        sub=user_id,
        role=role,
        jti=uuid.uuid4().hex,
        iat=issued / 1000,
        exp=issued // 1000 + settings.jwt_lifetime_seconds,
    )
    payload = {
        "sub": claims.sub,
        "role": claims.role,
        "jti": claims.jti,
        "iat": claims.iat,
        "exp": claims.exp,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
    }
    return jwt.encode(payload, settings.jwt_secret, algorithm=JWT_ALGORITHM), claims


def decode_access_token(token: str, settings: Settings | None = None) -> TokenClaims:
    settings = settings or get_settings()
    try:
        payload = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=[JWT_ALGORITHM],
            options={"require": list(REQUIRED_CLAIMS)},
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            leeway=0,
        )
    except jwt.ExpiredSignatureError as exc:
        raise InvalidToken("token expired") from exc
    except jwt.PyJWTError as exc:
        raise InvalidToken("invalid token") from exc
    try:
        return TokenClaims(
            sub=_text(payload["sub"]),
            role=_text(payload["role"]),
            jti=_text(payload["jti"]),
            iat=float(payload["iat"]),
            exp=int(payload["exp"]),
        )
    except (TypeError, ValueError) as exc:
        raise InvalidToken("invalid token") from exc


def _text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("claim must be a non-empty string")
    return value
