"""Every collection and index the service uses, created once, one at a time.

Run before the service's processes start (``make up``'s seed, the bench and chaos stacks,
the test session). Otherwise each process creates them on first use, at the same moment:
SecantusDB 0.7.0b3 can then spin forever inside ``createIndexes`` of a collection that two
connections create together (seen on ``make up`` with a fresh data dir: one server thread
at 100 % in ``Storage.create_collection``, every other request waiting behind it).
"""

from __future__ import annotations

from typing import Any

from core.db import get_db
from core.revocation import REVOKED_COLLECTION


def ensure_schema() -> list[str]:
    """Create the collections and indexes that do not exist yet; returns their names."""
    from models.account_token import AccountToken
    from models.api_key import ApiKey
    from models.dead_letter import DeadLetter
    from models.event import COUNTERS, EventRecord, seed_seq_counter
    from models.notification import Notification
    from models.order import Order
    from models.order_stats import OrderStats
    from models.outbox import ensure_outbox_indexes
    from models.outgoing_webhook import WebhookDelivery, WebhookSubscription
    from models.product import Product
    from models.sent_email import SentEmail
    from models.user import User
    from models.webhook import WebhookEvent

    documents: tuple[Any, ...] = (
        User,
        Product,
        Order,
        EventRecord,
        Notification,
        OrderStats,
        DeadLetter,
        WebhookEvent,
        WebhookSubscription,
        WebhookDelivery,
        SentEmail,
        AccountToken,
        ApiKey,
    )
    names = []
    for document in documents:
        document.ensure_indexes()
        names.append(document._get_collection_name())
    db = get_db()
    ensure_outbox_indexes(db)
    db[REVOKED_COLLECTION].create_index("expiresAt", expireAfterSeconds=0)
    names.append(REVOKED_COLLECTION)
    seed_seq_counter(db)  # the event sequence counter (models.event.allocate_seq)
    names.append(COUNTERS)
    return names
