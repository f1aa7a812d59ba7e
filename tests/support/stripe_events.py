"""Signed Stripe events shaped on Stripe's own published sample objects.

The samples (charge, dispute, refund, event) are copied unchanged from
github.com/stripe/openapi ``openapi/fixtures3.json`` into ``stripe_fixtures.json``; a test
overlays only the fields that tie them to its own objects (ids, amounts, statuses).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
import uuid
from functools import cache
from pathlib import Path
from typing import Any

from core.settings import get_settings

_FIXTURES = Path(__file__).with_name("stripe_fixtures.json")


@cache
def _samples() -> dict[str, Any]:
    return json.loads(_FIXTURES.read_text())


def sample(kind: str, **overrides: Any) -> dict[str, Any]:
    """Stripe's sample ``kind`` object (charge, dispute, refund) with ``overrides`` applied
    (a dict value is merged one level deep, e.g. ``evidence_details={"due_by": …}``)."""
    obj = copy.deepcopy(_samples()[kind])
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(obj.get(key), dict):
            obj[key].update(value)
        else:
            obj[key] = value
    return obj


def event(event_type: str, obj: dict[str, Any], *, event_id: str | None = None, created=None):
    """A Stripe event envelope (the sample event's fields) around ``obj``."""
    envelope = copy.deepcopy(_samples()["event"])
    envelope.update(
        id=event_id or f"evt_{uuid.uuid4().hex[:24]}",
        type=event_type,
        created=int(created if created is not None else time.time()),
        data={"object": obj},
    )
    return envelope


def sign(body: bytes, t: int | None = None, secret: str | None = None) -> str:
    """``Stripe-Signature``: ``t=<unix>,v1=HMAC_SHA256(secret, "<t>.<body>")``."""
    t = int(time.time()) if t is None else t
    secret = secret or get_settings().stripe_webhook_secret
    sig = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={sig}"


def post_event(client, envelope: dict[str, Any]):
    body = json.dumps(envelope).encode()
    return client.post(
        "/api/payments/webhook", content=body, headers={"Stripe-Signature": sign(body)}
    )
