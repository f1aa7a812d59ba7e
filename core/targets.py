"""Where outgoing webhooks may go: the URL rules plus, in production, no private network.

The check resolves the host when a subscription is saved and again before every attempt
(a name that resolved to a public address yesterday may point inside our network today).
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from core.settings import Settings
from workflows.outgoing_webhooks import address_refusal, url_error


def resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return []
    return sorted({str(info[4][0]) for info in infos})


def target_refusal(url: str, settings: Settings) -> str | None:
    """Why ``url`` may not receive our webhooks under ``settings``, or None."""
    problem = url_error(url)
    if problem or not settings.is_production:
        return problem
    parts = urlsplit(url)
    host = parts.hostname or ""
    allowed = [h.strip() for h in settings.webhook_allowed_hosts.split(",") if h.strip()]
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return address_refusal(host, resolve(host, port), allowed)
