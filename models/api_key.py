"""API keys for machine clients (ERP, warehouse): scoped, shown once, stored as SHA-256.

A key acts as the admin who made it, limited to its scopes; revoking it (or that admin
losing the role) ends it at once. ``last_used_at`` is written at most once a minute.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta
from typing import Any

from mongoengine import DateTimeField, Document, ListField, StringField

from core.bus import to_jsonable
from models.event import now_utc

KEY_PREFIX = "oms_"
LAST_USED_EVERY_S = 60


def key_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class ApiKey(Document):
    meta = {
        "collection": "api_keys",
        "indexes": [{"fields": ["digest"], "unique": True}, {"fields": ["-created_at"]}],
    }

    id = StringField(primary_key=True, default=lambda: f"key_{uuid.uuid4().hex[:16]}")
    digest = StringField(required=True)
    hint = StringField(required=True)  # the first characters, to tell keys apart in lists
    name = StringField(required=True, max_length=100)
    scopes = ListField(StringField(), required=True)
    created_by = StringField(db_field="createdBy", required=True)
    created_at = DateTimeField(db_field="createdAt", default=now_utc)
    last_used_at = DateTimeField(db_field="lastUsedAt", null=True)
    revoked_at = DateTimeField(db_field="revokedAt", null=True)

    @classmethod
    def create(cls, name: str, scopes: list[str], created_by: str) -> tuple[ApiKey, str]:
        token = KEY_PREFIX + secrets.token_urlsafe(32)
        key = cls(
            digest=key_digest(token),
            hint=token[:10],
            name=name,
            scopes=scopes,
            created_by=created_by,
        )
        key.save(force_insert=True)
        return key, token

    @classmethod
    def active_for(cls, token: str) -> ApiKey | None:
        """The unrevoked key this token is, marking it used (throttled); else None."""
        key = cls.objects(digest=key_digest(token), revoked_at=None).first()
        if key is None:
            return None
        now = now_utc()
        cutoff = now - timedelta(seconds=LAST_USED_EVERY_S)
        cls._get_collection().update_one(
            {"_id": key.id, "$or": [{"lastUsedAt": None}, {"lastUsedAt": {"$lt": cutoff}}]},
            {"$set": {"lastUsedAt": now}},
        )
        return key

    @classmethod
    def revoke(cls, key_id: str) -> bool:
        result = cls._get_collection().update_one(
            {"_id": key_id, "revokedAt": None}, {"$set": {"revokedAt": now_utc()}}
        )
        return result.modified_count == 1

    def public(self) -> dict[str, Any]:
        return to_jsonable(
            {
                "id": self.id,
                "name": self.name,
                "hint": self.hint,
                "scopes": list(self.scopes),
                "createdBy": self.created_by,
                "createdAt": self.created_at,
                "lastUsedAt": self.last_used_at,
                "revokedAt": self.revoked_at,
                "active": self.revoked_at is None,
            }
        )
