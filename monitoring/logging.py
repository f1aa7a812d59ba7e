"""Structured JSON logs (structlog) with correlation context and secret redaction."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from core.context import correlation_id_var
from core.settings import get_settings
from monitoring.tracing import add_trace_ids

# Keys whose values never reach a log line, at any depth.
SENSITIVE_KEYS = frozenset(
    {
        "password",
        "currentpassword",
        "current_password",
        "password_hash",
        "passwordhash",
        "token",
        "access_token",
        "authorization",
        "secret",
        "client_secret",
        "clientsecret",
        "stripe_signature",
        "webhook_secret",
        "card",
        "number",
        "cvc",
        "phone",
        "shippingaddress",
        "shipping_address",
        "address",
        "api_key",
        "jwt",
        # Personal data and credentials of the users module.
        "email",
        "phone_number",
        "phone_enc",
        "firstname",
        "first_name",
        "lastname",
        "last_name",
        "new_password",
        "newpassword",
        "cookie",
        "set_cookie",
    }
)
REDACTED = "[redacted]"
# Things that look like secrets even inside free text.
_PATTERNS = [
    re.compile(r"eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+"),  # JWT
    re.compile(r"\b(?:sk|rk|whsec)_[A-Za-z0-9_]+"),  # Stripe secrets
    re.compile(r"\b(?:\d[ -]?){13,19}\b"),  # card-like digit runs
    re.compile(r"(?i)bearer\s+[A-Za-z0-9._\-]+"),
    re.compile(r"\+[1-9]\d{6,14}\b"),  # E.164 phone numbers
    re.compile(r"\$argon2[a-z]*\$[^\s\"']+"),  # password hashes
    # Email addresses in free text (log messages, exception text), not only under keys.
    re.compile(
        r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+"
    ),
]


def _scrub(value: Any, depth: int = 0) -> Any:
    if depth > 6:
        return value
    if isinstance(value, dict):
        return {
            k: (
                REDACTED
                if str(k).lower().replace("-", "_") in SENSITIVE_KEYS
                else _scrub(v, depth + 1)
            )
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_scrub(v, depth + 1) for v in value]
    if isinstance(value, str):
        for pattern in _PATTERNS:
            value = pattern.sub(REDACTED, value)
    return value


def redact_processor(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: remove passwords, tokens, card data, secrets, personal data."""
    for key in list(event_dict.keys()):
        if str(key).lower().replace("-", "_") in SENSITIVE_KEYS:
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


def _add_correlation(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    if "correlation_id" not in event_dict:
        cid = correlation_id_var.get()
        if cid:
            event_dict["correlation_id"] = cid
    return event_dict


_configured = False


def configure_logging(force: bool = False) -> None:
    """Route structlog and stdlib logging to one JSON line per event on stderr."""
    global _configured
    if _configured and not force:
        return
    settings = get_settings()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _add_correlation,
        add_trace_ids,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_processor,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if settings.log_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    for noisy in ("pymongo", "urllib3", "httpx", "httpcore", "stripe", "kombu", "amqp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").handlers[:] = []
    logging.getLogger("uvicorn.access").propagate = False
    _configured = True


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
