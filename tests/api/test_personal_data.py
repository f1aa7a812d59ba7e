"""The event store keeps no email addresses (it keeps events for years and replays them)."""

from __future__ import annotations

import json

from tests.factories import admin_login, auth, create_product, place_order, register


def test_event_store_keeps_no_emails(client, worker) -> None:
    from core.db import get_db
    from tasks.dispatch import enqueue_outbox
    from tests.support.events import wait_until

    admin = admin_login(client)
    create_product(client, admin["token"], "PII-1", stock=3)
    customer = register(client, "private.person@example.com")
    r = place_order(client, customer["token"], [("PII-1", 1)])
    assert r.status_code == 202, r.text
    enqueue_outbox("users", customer["user"]["id"])
    events = get_db()["events"]
    wait_until(lambda: events.count_documents({"type": "user.created"}) >= 1)
    wait_until(lambda: events.count_documents({"type": "order.created"}) >= 1)
    dumped = json.dumps(list(events.find({})), default=str)
    assert "private.person" not in dumped
    assert "@example.com" not in dumped
    r = client.get(f"/api/events?userId={customer['user']['id']}", headers=auth(admin["token"]))
    assert r.status_code == 200 and "private.person" not in r.text


def test_names_are_encrypted_at_rest_and_read_in_clear(client) -> None:
    from core.crypto import key_id_of
    from core.db import get_db

    customer = register(client, "named@example.com")
    user_id = customer["user"]["id"]
    raw = get_db()["users"].find_one({"email": "named@example.com"})
    assert key_id_of(raw["first_name"]) == key_id_of(raw["last_name"]) == "dev1"
    assert "Test" not in str(raw) and "User" not in raw["last_name"]
    r = client.patch(
        "/api/users/profile", headers=auth(customer["token"]), json={"firstName": "Augusta"}
    )
    assert r.status_code == 200 and r.json()["data"]["user"]["firstName"] == "Augusta"
    raw = get_db()["users"].find_one({"email": "named@example.com"})
    assert "Augusta" not in str(raw)
    profile = client.get("/api/users/profile", headers=auth(customer["token"])).json()
    assert profile["data"]["user"]["firstName"] == "Augusta"
    assert profile["data"]["user"]["lastName"] == "User"
    assert profile["data"]["user"]["id"] == user_id
