"""``POST /api/notifications/read-all``: the caller's unread ones only, idempotent."""

from __future__ import annotations

from models.notification import Notification
from tests.factories import auth, register


def _notify(user_id: str, n: int) -> None:
    Notification.add_many(
        [
            {
                "userId": user_id,
                "eventId": f"ev-{user_id}-{i}",
                "type": "order.created",
                "title": f"Order {i} received",
                "body": "We have your order.",
                "data": {},
            }
            for i in range(n)
        ]
    )


def test_mark_all_read_marks_only_mine_and_is_idempotent(client) -> None:
    alice, bob = register(client), register(client)
    _notify(alice["user"]["id"], 3)
    _notify(bob["user"]["id"], 2)
    r = client.post("/api/notifications/read-all", headers=auth(alice["token"]))
    assert r.status_code == 200, r.text
    assert r.json()["data"] == {"marked": 3}
    unread = client.get("/api/notifications?unread=true", headers=auth(alice["token"])).json()
    assert unread["pagination"]["total"] == 0
    listed = client.get("/api/notifications", headers=auth(alice["token"])).json()
    assert all(n["read"] and n["readAt"] for n in listed["data"]["notifications"])
    assert client.post("/api/notifications/read-all", headers=auth(alice["token"])).json()[
        "data"
    ] == {"marked": 0}
    others = client.get("/api/notifications?unread=true", headers=auth(bob["token"])).json()
    assert others["pagination"]["total"] == 2
    assert client.post("/api/notifications/read-all").status_code == 401


def test_payments_config_says_test_mode_outside_production(client) -> None:
    body = client.get("/api/payments/config").json()["data"]
    assert body["testMode"] is True and body["publishableKey"].startswith("pk_test_")
