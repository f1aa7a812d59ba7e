"""Helpers that talk to the localstripe emulator's test-only endpoints (dev and tests only).

Used by ``make up`` and the test suite; the app itself never calls these. They use plain
httpx, not the stripe SDK: ``/_config/*`` and ``_authenticate`` are not Stripe APIs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

DEFAULT_TIMEOUT_SECONDS = 5.0


def register_webhook(
    api_base: str,
    url: str,
    secret: str,
    hook_id: str = "oms",
    *,
    events: Sequence[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> None:
    """Make localstripe deliver its events to ``url``, signed with ``secret``.

    ``POST {api_base}/_config/webhooks/{hook_id}`` (form: ``url``, ``secret``, optional
    ``events[]``; no auth). Registering the same ``hook_id`` again replaces it. The emulator
    keeps registrations in memory only: call this after every emulator start.
    """
    form: dict[str, Any] = {"url": url, "secret": secret}
    if events:
        form["events[]"] = list(events)
    response = httpx.post(
        f"{api_base.rstrip('/')}/_config/webhooks/{hook_id}", data=form, timeout=timeout
    )
    response.raise_for_status()


def authenticate_3ds(
    api_base: str,
    intent_id: str,
    client_secret: str,
    success: bool,
    secret_key: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> dict[str, Any]:
    """Complete (``success=True``) or fail 3-D Secure for an intent in ``requires_action``.

    ``POST /v1/payment_intents/{id}/_authenticate`` with the intent's ``client_secret``,
    authorised by the secret key. Success charges the card (→ ``succeeded``); failure moves
    the intent to ``requires_payment_method`` with ``payment_intent_authentication_failure``
    and sends no webhook. Returns the intent as the emulator answers it; raises
    ``httpx.HTTPStatusError`` on an error answer (e.g. 400 when not ``requires_action``).
    """
    response = httpx.post(
        f"{api_base.rstrip('/')}/v1/payment_intents/{intent_id}/_authenticate",
        data={"client_secret": client_secret, "success": "true" if success else "false"},
        headers={"Authorization": f"Bearer {secret_key}"},
        timeout=timeout,
    )
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result
