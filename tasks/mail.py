"""Transactional email: templates as files, sent by workers, each one once.

The ``email`` event handler (inside the outbox dispatch) only queues ``mail.send`` on the
``webhooks`` queue (the one for talking to the outside), so a slow SMTP server never slows
an order. ``mail.send`` claims the email's dedupe key (template + event id, or refund id),
renders ``tasks/templates/email/<template>.txt.j2`` (first line: the subject) and
``.html.j2`` with Jinja2, and sends both parts over SMTP; an SMTP failure retries with
back-off. At least once: a crash between the send and the record sends it again, with the
same ``Message-ID`` so mail clients can fold the copy.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any

import structlog
from celery import Task
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from core.settings import get_settings
from models.event import get_event
from models.order import Order
from models.sent_email import SentEmail
from models.user import User
from tasks.app import celery_app
from tasks.dispatch import CORRELATION_HEADER
from tasks.handlers import register
from workflows.customer_text import customer_reason
from workflows.events import EventType
from workflows.pricing import format_minor

log = structlog.get_logger(__name__)
TEMPLATES = Path(__file__).parent / "templates" / "email"
SEND = "mail.send"
_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)
# Order events that mail the customer, and the template each one uses.
ORDER_TEMPLATES = {
    EventType.ORDER_CREATED: "order_received",
    EventType.PAYMENT_FAILED: "payment_failed",
    EventType.ORDER_SHIPPED: "shipped",
    EventType.PAYMENT_REFUNDED: "refunded",
}
SMTP_ERRORS = (smtplib.SMTPException, OSError)


def render(template: str, context: dict[str, Any]) -> tuple[str, str, str]:
    """(subject, plain text, html) of ``template`` with ``context``."""
    text = _env.get_template(f"{template}.txt.j2").render(**context)
    subject, _, body = text.partition("\n")
    html = _env.get_template(f"{template}.html.j2").render(**context)
    return subject.strip(), body.lstrip("\n"), html


def build_message(to: str, subject: str, text: str, html: str, message_id: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = get_settings().mail_from
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = message_id
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg


def deliver_smtp(msg: EmailMessage) -> None:
    """Hand ``msg`` to the configured SMTP server (plain, STARTTLS or implicit TLS)."""
    s = get_settings()
    if s.smtp_security == "tls":
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            s.smtp_host,
            s.smtp_port,
            timeout=s.smtp_timeout_seconds,
            context=ssl.create_default_context(),
        )
    else:
        client = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_seconds)
    with client:
        if s.smtp_security == "starttls":
            client.starttls(context=ssl.create_default_context())
        if s.smtp_username:
            client.login(s.smtp_username, s.smtp_password)
        client.send_message(msg)


def _order_context(order: Order) -> dict[str, Any]:
    currency = order.currency or get_settings().currency
    money = lambda cents: format_minor(int(cents or 0), currency)  # noqa: E731
    return {
        "number": order.order_number,
        "currency": currency.upper(),
        "lines": [
            {
                "name": line.get("name") or line.get("sku"),
                "quantity": line.get("quantity"),
                "total": money(line.get("lineTotalCents")),
            }
            for line in order.items or []
        ],
        "subtotal": money(order.subtotal_cents),
        "tax": money(order.tax_cents),
        "shipping": money(order.shipping_cents),
        "total": money(order.total_cents),
        "carrier": order.carrier,
        "tracking_number": order.tracking_number,
        "estimated_delivery": order.estimated_delivery.date().isoformat()
        if order.estimated_delivery
        else None,
        "link": f"{get_settings().public_base_url.rstrip('/')}/#/orders/{order.id}",
    }


@register("email", types=ORDER_TEMPLATES)
def queue_order_email(event: dict[str, Any]) -> None:
    """Queue the customer's email for this order event (nothing when mail is off)."""
    if not get_settings().smtp_host or not event.get("userId"):
        return
    template = ORDER_TEMPLATES[EventType(event["type"])]
    data = event.get("data") or {}
    if template == "refunded":
        if not data.get("refundId"):
            return  # the status move's mirror of a refund already mailed by its own event
        key = f"{template}:{data['refundId']}"
    else:
        key = f"{template}:{event['eventId']}"
    celery_app.send_task(
        SEND,
        kwargs={"key": key, "template": template, "event_id": event["eventId"]},
        queue="webhooks",
        # The order's correlation id, so the mail's logs and spans join the order's.
        headers={CORRELATION_HEADER: event.get("correlationId")},
    )


def _context(
    template: str, event_id: str | None, user_id: str | None, extra: dict[str, Any]
) -> tuple[User | None, dict[str, Any]]:
    context: dict[str, Any] = dict(extra)
    if event_id is not None:
        event = get_event(event_id)
        if event is None:
            return None, {}
        order = Order.get(str(event["aggregateId"]))
        if order is None:
            return None, {}
        user_id = order.user_id
        data = event.get("data") or {}
        context["order"] = _order_context(order)
        # In the customer's words (a decline code becomes a sentence), never the raw text.
        context["reason"] = (
            customer_reason(data.get("reason"), status=data.get("to"), actor=data.get("actor"))
            or ""
        )
        context["amount"] = format_minor(int(data.get("amountCents") or 0), order.currency or "usd")
    user = User.by_id(user_id) if user_id else None
    if user is not None:
        context["customer"] = {"first_name": user.first_name or "there"}
    return user, context


@celery_app.task(
    bind=True,
    name=SEND,
    acks_late=True,
    autoretry_for=SMTP_ERRORS,
    retry_backoff=True,
    retry_backoff_max=get_settings().retry_backoff_cap,
    retry_jitter=True,
    max_retries=get_settings().retry_max,
)
def send(
    self: Task,
    key: str,
    template: str,
    event_id: str | None = None,
    user_id: str | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    if not get_settings().smtp_host:
        return "mail_off"
    user, context = _context(template, event_id, user_id, extra or {})
    if user is None or not user.active:
        return "no_recipient"
    if not SentEmail.claim(key, template, str(user.id)):
        return "already_sent"
    subject, text, html = render(template, context)
    message_id = f"<{key.replace(':', '.')}@oms>"
    deliver_smtp(build_message(user.email, subject, text, html, message_id))
    SentEmail.mark_sent(key, message_id)
    log.info("email_sent", template=template, key=key, user_id=str(user.id))
    return "sent"
