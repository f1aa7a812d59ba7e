"""Single-use, expiring account links (password reset, email verification).

Only a SHA-256 of the token is stored: a leaked collection opens no account. Using a token
is one conditional update (unused and unexpired → used), so it works exactly once even
when two requests race.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from mongoengine import DateTimeField, Document, StringField
from pymongo import ReturnDocument

from models.event import now_utc

RESET, VERIFY = "password_reset", "verify_email"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class AccountToken(Document):
    meta = {
        "collection": "account_tokens",
        "indexes": [
            {"fields": ["user_id", "purpose"]},
            # Gone a day after expiry; until then a reuse is told apart from nonsense in logs.
            {"fields": ["expires_at"], "expireAfterSeconds": 24 * 3600},
        ],
    }

    id = StringField(primary_key=True)  # sha256 of the token
    user_id = StringField(db_field="userId", required=True)
    purpose = StringField(required=True, choices=(RESET, VERIFY))
    created_at = DateTimeField(db_field="createdAt", default=now_utc)
    expires_at = DateTimeField(db_field="expiresAt", required=True)
    used_at = DateTimeField(db_field="usedAt", null=True)

    @classmethod
    def issue(cls, user_id: str, purpose: str, ttl_seconds: int) -> str:
        """A new token for ``user_id``; earlier unused ones of the same purpose stop working."""
        now = now_utc()
        cls._get_collection().update_many(
            {"userId": user_id, "purpose": purpose, "usedAt": None}, {"$set": {"usedAt": now}}
        )
        token = secrets.token_urlsafe(32)
        cls(
            id=_digest(token),
            user_id=user_id,
            purpose=purpose,
            expires_at=now + timedelta(seconds=ttl_seconds),
        ).save(force_insert=True)
        return token

    @classmethod
    def use(cls, token: str, purpose: str) -> str | None:
        """The user id the token was for, once; None if unknown, used, expired or other."""
        now = now_utc()
        doc = cls._get_collection().find_one_and_update(
            {"_id": _digest(token), "purpose": purpose, "usedAt": None, "expiresAt": {"$gt": now}},
            {"$set": {"usedAt": now}},
            return_document=ReturnDocument.AFTER,
        )
        return doc["userId"] if doc else None
