"""Outgoing webhooks, the pure part: which events a subscription wants, how a delivery is
signed, when a failed one is tried again, and which targets are refused. No I/O.

A delivery is signed the way Stripe signs the webhooks it sends us: the header
``OMS-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import random
from collections.abc import Iterable
from urllib.parse import urlsplit

SIGNATURE_HEADER = "OMS-Signature"
DELIVERY_HEADER = "OMS-Delivery-Id"
EVENT_ID_HEADER = "OMS-Event-Id"
EVENT_TYPE_HEADER = "OMS-Event-Type"
SECRET_PREFIX = "whsec_"
MAX_PATTERNS = 50


def pattern_error(pattern: str) -> str | None:
    """Why ``pattern`` is not an event-type pattern (``order.created``, ``order.*``, ``*``)."""
    if not pattern or len(pattern) > 100:
        return "must be 1..100 characters"
    if pattern == "*":
        return None
    head, _, tail = pattern.rpartition(".")
    name = head if tail == "*" else pattern
    parts = name.split(".")
    if not all(p and all(c.isalnum() or c == "_" for c in p) for p in parts):
        return "letters, digits and _ between dots, optionally ending in .*"
    return None


def wants(patterns: Iterable[str], event_type: str) -> bool:
    """True when one pattern matches: exact, ``*`` (everything) or ``prefix.*`` (any depth)."""
    for pattern in patterns:
        if pattern == "*" or pattern == event_type:
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``OMS-Signature`` header value for ``body`` sent at ``timestamp``."""
    signed = str(timestamp).encode("ascii") + b"." + body
    digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def retry_delay(
    attempts: int, *, base: float, cap: float, rand: random.Random | None = None
) -> float:
    """Seconds before attempt ``attempts + 1``: exponential from ``base``, capped, with jitter.

    "Equal jitter": half the exponential step is kept, so retries never bunch at zero, and
    the other half is random, so many failing deliveries do not retry in lockstep.
    """
    step = min(cap, base * 2 ** max(0, attempts - 1))
    return step / 2 + (rand or random).uniform(0, step / 2)


def url_error(url: str) -> str | None:
    """Why ``url`` cannot be a target at all (scheme, host, credentials, fragment)."""
    if len(url) > 2000:
        return "at most 2000 characters"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return "only http and https targets"
    if not parts.hostname:
        return "a host is required"
    if parts.username or parts.password:
        return "no credentials in the URL (the signature authenticates us)"
    if parts.fragment:
        return "no fragment"
    return None


def address_refusal(
    host: str, addresses: Iterable[str], allowed_hosts: Iterable[str]
) -> str | None:
    """In production: why a target resolving to ``addresses`` is refused (SSRF), or None.

    Loopback, private, link-local, reserved and multicast addresses reach our own network,
    not a shop's system; a host in ``allowed_hosts`` (a setting) is let through anyway.
    """
    if host.lower() in {h.lower() for h in allowed_hosts}:
        return None
    resolved = list(addresses)
    if not resolved:
        return f"{host} does not resolve"
    for raw in resolved:
        ip = ipaddress.ip_address(raw.split("%", 1)[0])
        if ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_reserved:
            return f"{host} resolves to a non-public address ({ip})"
        if ip.is_multicast or ip.is_unspecified:
            return f"{host} resolves to a non-public address ({ip})"
    return None
