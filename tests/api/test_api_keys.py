"""API keys for machine clients: scopes, revocation, last use, and their own rate limit."""

from __future__ import annotations

from tests.api.test_rate_limit import _client
from tests.factories import admin_login, auth, create_product, place_order, register


def _key(client, admin: str, scopes: list[str], name: str = "erp") -> tuple[str, dict]:
    r = client.post("/api/api-keys", json={"name": name, "scopes": scopes}, headers=auth(admin))
    assert r.status_code == 201, r.text
    data = r.json()["data"]
    assert data["key"].startswith("oms_")
    return data["key"], data["apiKey"]


def test_read_key_lists_orders_cannot_create_and_revoked_is_401(client) -> None:
    admin = admin_login(client)
    create_product(client, admin["token"], "KEY-1")
    customer = register(client)
    order_id = place_order(client, customer["token"], [("KEY-1", 1)]).json()["data"]["order"]["id"]
    key, meta = _key(client, admin["token"], ["orders:read"])
    assert meta["scopes"] == ["orders:read"] and meta["lastUsedAt"] is None

    listed = client.get("/api/orders", headers=auth(key))
    assert listed.status_code == 200, listed.text
    assert [o["id"] for o in listed.json()["data"]["orders"]] == [order_id]
    assert client.get(f"/api/orders/{order_id}", headers=auth(key)).status_code == 200

    create = place_order(client, key, [("KEY-1", 1)])
    assert create.status_code == 403
    assert create.json()["code"] == "INSUFFICIENT_SCOPE"
    assert "orders:write" in create.json()["message"]
    # Routes no scope covers are closed to keys, admin's own or not.
    assert client.get("/api/users/profile", headers=auth(key)).status_code == 403
    assert client.get("/api/api-keys", headers=auth(key)).status_code == 403
    assert client.get("/api/webhook-subscriptions", headers=auth(key)).status_code == 403

    keys = client.get("/api/api-keys", headers=auth(admin["token"])).json()["data"]["apiKeys"]
    assert keys[0]["lastUsedAt"] is not None
    assert key not in str(keys)  # never shown again

    revoked = client.delete(f"/api/api-keys/{meta['id']}", headers=auth(admin["token"]))
    assert revoked.status_code == 200 and revoked.json()["data"]["apiKey"]["active"] is False
    after = client.get("/api/orders", headers=auth(key))
    assert after.status_code == 401
    assert client.get("/api/orders", headers=auth("oms_made-up-key")).status_code == 401


def test_write_and_webhook_scopes(client) -> None:
    admin = admin_login(client)
    create_product(client, admin["token"], "KEY-2")
    key, _ = _key(client, admin["token"], ["orders:write", "webhooks:manage"])
    assert place_order(client, key, [("KEY-2", 1)]).status_code == 202
    hooks = client.post(
        "/api/webhook-subscriptions",
        json={"url": "http://127.0.0.1:9/h", "eventTypes": ["order.*"]},
        headers=auth(key),
    )
    assert hooks.status_code == 201
    bad = client.post(
        "/api/api-keys",
        json={"name": "x", "scopes": ["orders:everything"]},
        headers=auth(admin["token"]),
    )
    assert bad.status_code == 400


def test_a_key_stops_when_its_admin_is_no_longer_admin(client) -> None:
    from models.user import User

    admin = admin_login(client)
    other = User.ensure_admin("second-admin@example.com", "second-admin-pass-1")[0]
    from core.security import create_access_token

    token, _ = create_access_token(str(other.id), other.role)
    key, _ = _key(client, token, ["orders:read"])
    assert client.get("/api/orders", headers=auth(key)).status_code == 200
    User.objects(id=other.id).update(set__role="customer")
    assert client.get("/api/orders", headers=auth(key)).status_code == 401
    assert admin["token"]


def test_each_key_has_its_own_rate_limit(clean_data) -> None:
    for client in _client(rate_limit_default="1000/minute", rate_limit_api_key="3/minute"):
        admin = admin_login(client)
        first, _ = _key(client, admin["token"], ["orders:read"], "one")
        second, _ = _key(client, admin["token"], ["orders:read"], "two")
        codes = [client.get("/api/orders", headers=auth(first)).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        assert client.get("/api/orders", headers=auth(second)).status_code == 200
        assert client.get("/api/orders", headers=auth(admin["token"])).status_code == 200
