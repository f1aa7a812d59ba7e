"""Token revocation: fast answers from Redis, durable truth in MongoDB.

Two kinds of revocation, both written to Mongo first and Redis second:

- one token (logout): ``oms:revoked:{jti}`` and a ``revoked_tokens`` document whose TTL
  index drops it once the token would have expired anyway;
- every token of a user issued before a moment (password change, deactivation):
  ``oms:tokens_before:{user_id}`` and the ``tokens_valid_after`` field of the user.

A Redis miss falls back to Mongo and re-warms Redis, so a Redis restart (which keeps
nothing here) brings no revoked token back. Redis also caches "checked, not revoked"
("0") with SET NX, which a later revocation's plain SET always overrides. Those cached
answers live ``REVOCATION_CACHE_SECONDS`` at most, so a revocation that Redis lost (a
failover to a replica that had not received it yet) is enforced from Mongo after that.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from bson import ObjectId
from bson.errors import InvalidId
from pymongo import ReturnDocument
from pymongo.database import Database

from core.db import get_db
from core.redis_client import make_redis
from core.settings import Settings

REVOKED_COLLECTION = "revoked_tokens"
USERS_COLLECTION = "users"
TOKENS_VALID_AFTER = "tokens_valid_after"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_REVOKED = "1"
_CLEAN = "0"


def ms_to_datetime(ms: int) -> datetime:
    # Integer arithmetic: Mongo keeps milliseconds, so the round trip is exact.
    return _EPOCH + timedelta(milliseconds=ms)


def datetime_to_ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _user_filter(user_id: str) -> dict[str, Any]:
    try:
        return {"_id": ObjectId(user_id)}
    except (InvalidId, TypeError):
        return {"_id": user_id}


class RevocationStore:
    """Revocations for one Redis (from the app's settings) and the mongoengine database."""

    def __init__(
        self,
        redis_client: redis.Redis,
        token_lifetime_seconds: int,
        db: Callable[[], Database] = get_db,
        cache_seconds: int = 30,
    ) -> None:
        self.redis = redis_client
        self.lifetime = max(1, token_lifetime_seconds)
        # How long Redis may answer without Mongo. A revocation written to Mongo but lost by
        # Redis (a failover to a replica that missed it) is enforced once this runs out.
        self.cache_seconds = max(1, cache_seconds)
        self._db = db
        self._indexed = False

    @classmethod
    def from_settings(cls, settings: Settings) -> RevocationStore:
        client = make_redis(settings.redis_url)
        return cls(
            client, settings.jwt_lifetime_seconds, cache_seconds=settings.revocation_cache_seconds
        )

    @staticmethod
    def jti_key(jti: str) -> str:
        return f"oms:revoked:{jti}"

    @staticmethod
    def before_key(user_id: str) -> str:
        return f"oms:tokens_before:{user_id}"

    def _ttl_until(self, exp: int | None) -> int:
        if exp is None:
            return self.lifetime
        return max(1, int(exp - time.time()) + 1)

    def _ensure_indexes(self) -> None:
        if not self._indexed:
            self._db()[REVOKED_COLLECTION].create_index("expiresAt", expireAfterSeconds=0)
            self._indexed = True

    def revoke(self, jti: str, exp: int, user_id: str | None = None) -> None:
        """Revoke one token until it expires."""
        self._ensure_indexes()
        self._db()[REVOKED_COLLECTION].update_one(
            {"_id": jti},
            {"$set": {"expiresAt": ms_to_datetime(exp * 1000), "userId": user_id}},
            upsert=True,
        )
        self.redis.set(self.jti_key(jti), _REVOKED, ex=self._ttl_until(exp))

    def revoke_all_before(self, user_id: str, before_ms: int) -> int:
        """Revoke the user's tokens issued before ``before_ms``; returns the cut-off in force."""
        doc = self._db()[USERS_COLLECTION].find_one_and_update(
            _user_filter(user_id),
            {"$max": {TOKENS_VALID_AFTER: ms_to_datetime(before_ms)}},
            projection={TOKENS_VALID_AFTER: 1},
            return_document=ReturnDocument.AFTER,
        )
        stored = doc.get(TOKENS_VALID_AFTER) if doc else None
        effective = max(before_ms, datetime_to_ms(stored) if stored else 0)
        self.redis.set(self.before_key(user_id), str(effective), ex=self.cache_seconds)
        return effective

    def is_revoked(self, jti: str, user_id: str, issued_ms: int, exp: int | None = None) -> bool:
        """True if this token was revoked by jti or by the user's "tokens before" cut-off."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(self.jti_key(jti))
        pipe.get(self.before_key(user_id))
        cached_jti, cached_before = pipe.execute()
        if cached_jti == _REVOKED:
            return True
        if cached_jti is None:
            found = self._db()[REVOKED_COLLECTION].find_one({"_id": jti}, {"_id": 1})
            if found is not None:
                self.redis.set(self.jti_key(jti), _REVOKED, ex=self._ttl_until(exp))
                return True
            clean_ttl = min(self._ttl_until(exp), self.cache_seconds)
            self.redis.set(self.jti_key(jti), _CLEAN, ex=clean_ttl, nx=True)
        if cached_before is None:
            doc = self._db()[USERS_COLLECTION].find_one(
                _user_filter(user_id), {TOKENS_VALID_AFTER: 1}
            )
            stored = doc.get(TOKENS_VALID_AFTER) if doc else None
            before_ms = datetime_to_ms(stored) if stored else 0
            self.redis.set(self.before_key(user_id), str(before_ms), ex=self.cache_seconds, nx=True)
        else:
            before_ms = int(cached_before)
        return issued_ms < before_ms

    def close(self) -> None:
        self.redis.close()
