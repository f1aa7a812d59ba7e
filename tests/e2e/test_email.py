"""Transactional email through a real SMTP server (the aiosmtpd sink), sent by the worker."""

from __future__ import annotations

import re
from email import policy
from email.parser import BytesParser
from pathlib import Path

from tests.factories import admin_login, auth, customer_with_card, place_order, register
from tests.support.events import wait_until


def _mail_to(sink: Path, address: str) -> list:
    found = []
    for path in sorted(sink.glob("*.eml")):
        msg = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        if msg["To"] == address:
            found.append(msg)
    return found


def _subjects(sink: Path, address: str) -> list[str]:
    return [str(m["Subject"]) for m in _mail_to(sink, address)]


def _text(msg) -> str:
    return msg.get_body(preferencelist=("plain",)).get_content()


def test_order_received_then_shipped_with_tracking(client, worker, services) -> None:
    sink = services["mail"]["dir"]
    customer, card = customer_with_card(client, "MAIL-1")
    r = place_order(client, customer["token"], [("MAIL-1", 2)], card)
    assert r.status_code == 202, r.text
    order = r.json()["data"]["order"]
    number = order["orderNumber"]
    wait_until(
        lambda: (
            {f"Order {number} received", f"Order {number} shipped"}
            <= set(_subjects(sink, customer["email"]))
        ),
        timeout=30,
    )
    mails = {str(m["Subject"]): m for m in _mail_to(sink, customer["email"])}
    received = mails[f"Order {number} received"]
    assert received.get_body(preferencelist=("html",)) is not None, "no HTML part"
    whole, cents = divmod(order["totalCents"], 100)
    assert f"{whole}.{cents:02d}" in _text(received)
    shipped = client.get(f"/api/orders/{order['id']}", headers=auth(customer["token"])).json()
    tracking = shipped["data"]["order"]["trackingNumber"]
    assert tracking and tracking in _text(mails[f"Order {number} shipped"])
    # The order's pages in the mail link to the dashboard.
    assert f"#/orders/{order['id']}" in _text(received)
    # Each event mails once, even though handlers may run again (at-least-once).
    subjects = _subjects(sink, customer["email"])
    assert subjects.count(f"Order {number} received") == 1

    admin = admin_login(client)
    listed = client.get(
        f"/api/dev/mail?to={customer['email']}", headers=auth(admin["token"])
    ).json()["data"]["messages"]
    assert {m["subject"] for m in listed} >= {f"Order {number} received"}
    assert client.get("/api/dev/mail", headers=auth(customer["token"])).status_code == 403


def test_order_email_is_sent_once_when_its_handler_runs_again(client, worker, services) -> None:
    from models.event import get_event, public_event, timeline_for
    from tasks.mail import queue_order_email

    sink = services["mail"]["dir"]
    customer, card = customer_with_card(client, "MAIL-2")
    r = place_order(client, customer["token"], [("MAIL-2", 1)], None)
    number = r.json()["data"]["order"]["orderNumber"]
    subject = f"Order {number} received"
    wait_until(lambda: subject in _subjects(sink, customer["email"]), timeout=30)
    created = next(
        e for e in timeline_for(r.json()["data"]["order"]["id"]) if e["type"] == "order.created"
    )
    event = public_event(get_event(created["eventId"]))
    queue_order_email(event)  # a redelivered event, say
    queue_order_email(event)
    wait_until(lambda: _worker_idle(), timeout=15)
    assert _subjects(sink, customer["email"]).count(subject) == 1


def _worker_idle() -> bool:
    from tasks.app import celery_app

    active = celery_app.control.inspect(timeout=1).active() or {}
    return all(not tasks for tasks in active.values())


def _token_from(msg) -> str:
    found = re.search(r"token=([A-Za-z0-9_\-]+)", _text(msg))
    assert found, _text(msg)
    return found.group(1)


def test_password_reset_link_works_once_and_ends_other_sessions(client, worker, services) -> None:
    sink = services["mail"]["dir"]
    customer = register(client)
    old_token = customer["token"]
    assert client.get("/api/users/profile", headers=auth(old_token)).status_code == 200

    unknown = client.post("/api/users/password-reset", json={"email": "nobody@example.com"})
    r = client.post("/api/users/password-reset", json={"email": customer["email"]})
    assert r.status_code == unknown.status_code == 202
    assert r.json()["message"] == unknown.json()["message"]  # nothing told about the account

    wait_until(lambda: "Reset your password" in _subjects(sink, customer["email"]), timeout=30)
    reset = next(
        m for m in _mail_to(sink, customer["email"]) if m["Subject"] == "Reset your password"
    )
    token = _token_from(reset)
    assert "#/reset-password?token=" in _text(reset)

    done = client.post(
        "/api/users/password-reset/confirm", json={"token": token, "password": "brand-new-pass-7"}
    )
    assert done.status_code == 200, done.text
    new_token = done.json()["data"]["token"]
    assert client.get("/api/users/profile", headers=auth(new_token)).status_code == 200
    assert client.get("/api/users/profile", headers=auth(old_token)).status_code == 401

    again = client.post(
        "/api/users/password-reset/confirm", json={"token": token, "password": "another-pass-8"}
    )
    assert again.status_code == 400
    assert again.json()["code"] == "RESET_TOKEN_INVALID"
    login_old = client.post(
        "/api/users/login", json={"email": customer["email"], "password": customer["password"]}
    )
    assert login_old.status_code == 401
    login_new = client.post(
        "/api/users/login", json={"email": customer["email"], "password": "brand-new-pass-7"}
    )
    assert login_new.status_code == 200


def test_registration_sends_a_verification_link(client, worker, services) -> None:
    sink = services["mail"]["dir"]
    customer = register(client)
    assert customer["user"]["emailVerified"] is False
    subject = "Confirm your email address"
    wait_until(lambda: subject in _subjects(sink, customer["email"]), timeout=30)
    msg = next(m for m in _mail_to(sink, customer["email"]) if m["Subject"] == subject)
    token = _token_from(msg)
    r = client.post("/api/users/verify-email", json={"token": token})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["user"]["emailVerified"] is True
    assert client.post("/api/users/verify-email", json={"token": token}).status_code == 400
    profile = client.get("/api/users/profile", headers=auth(customer["token"])).json()
    assert profile["data"]["user"]["emailVerified"] is True
