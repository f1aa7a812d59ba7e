"""Each transactional email once: ``_id`` is its dedupe key (event id or refund id + template)."""

from __future__ import annotations

from datetime import datetime

from mongoengine import DateTimeField, Document, IntField, StringField
from pymongo import ReturnDocument

from models.event import now_utc

SENDING, SENT = "sending", "sent"


class SentEmail(Document):
    meta = {"collection": "emails_sent", "indexes": [{"fields": ["user_id", "-created_at"]}]}

    id = StringField(primary_key=True)  # "<template>:<event or refund id>"
    template = StringField(required=True)
    user_id = StringField(db_field="userId", null=True)
    status = StringField(default=SENDING)
    attempts = IntField(default=0)
    message_id = StringField(db_field="messageId", null=True)
    created_at = DateTimeField(db_field="createdAt", default=now_utc)
    sent_at = DateTimeField(db_field="sentAt", null=True)

    @classmethod
    def claim(cls, key: str, template: str, user_id: str | None) -> bool:
        """True unless this email was sent already (a retry of an unsent one claims again)."""
        doc = cls._get_collection().find_one_and_update(
            {"_id": key},
            {
                "$setOnInsert": {
                    "template": template,
                    "userId": user_id,
                    "status": SENDING,
                    "createdAt": now_utc(),
                },
                "$inc": {"attempts": 1},
            },
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        return doc.get("status") != SENT

    @classmethod
    def mark_sent(cls, key: str, message_id: str, at: datetime | None = None) -> None:
        cls._get_collection().update_one(
            {"_id": key},
            {"$set": {"status": SENT, "messageId": message_id, "sentAt": at or now_utc()}},
        )
