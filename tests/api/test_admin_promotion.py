"""Account squatting → admin: promoting or repairing an account ends every session it had."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient
from typer.testing import CliRunner

PASSWORD = "squatter-pass-42"
ADMIN_PASSWORD = "operator-chosen-pass-77"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _register(client: TestClient, email: str) -> str:
    r = client.post(
        "/api/users/register",
        json={"email": email, "password": PASSWORD, "firstName": "Sq", "lastName": "Uatter"},
    )
    assert r.status_code == 201, r.text
    return r.json()["data"]["token"]


def test_create_admin_on_a_customer_needs_promote_existing_and_revokes_its_tokens(
    client: TestClient,
) -> None:
    import manage
    from models.user import User

    email = f"ops-{uuid.uuid4().hex[:8]}@example.com"
    squatter = _register(client, email)
    assert client.get("/api/users/profile", headers=auth(squatter)).status_code == 200
    assert client.get("/api/events/stats", headers=auth(squatter)).status_code == 403

    runner = CliRunner()
    args = ["create-admin", "--email", email, "--password", ADMIN_PASSWORD]
    refused = runner.invoke(manage.cli, args)
    assert refused.exit_code == 1, refused.output
    assert "--promote-existing" in refused.output
    assert User.by_email(email).role == "customer"
    assert client.get("/api/users/profile", headers=auth(squatter)).status_code == 200

    promoted = runner.invoke(manage.cli, [*args, "--promote-existing"])
    assert promoted.exit_code == 0, promoted.output
    assert User.by_email(email).role == "admin"
    # The token issued before the promotion is dead, everywhere, not admin for 12 h.
    r = client.get("/api/events/stats", headers=auth(squatter))
    assert r.status_code == 401, r.text
    assert client.get("/api/users/profile", headers=auth(squatter)).status_code == 401
    r = client.post("/api/users/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 401  # the squatter's password no longer works
    r = client.post("/api/users/login", json={"email": email, "password": ADMIN_PASSWORD})
    assert r.status_code == 200, r.text
    fresh = r.json()["data"]["token"]
    assert client.get("/api/events/stats", headers=auth(fresh)).status_code == 200


def test_admin_password_reset_by_ensure_admin_revokes_earlier_tokens(client: TestClient) -> None:
    from models.user import User

    email = f"boss-{uuid.uuid4().hex[:8]}@example.com"
    User.ensure_admin(email, ADMIN_PASSWORD)
    r = client.post("/api/users/login", json={"email": email, "password": ADMIN_PASSWORD})
    old = r.json()["data"]["token"]
    assert client.get("/api/events/stats", headers=auth(old)).status_code == 200
    _, changed = User.ensure_admin(email, "a-brand-new-pass-99")
    assert changed
    assert client.get("/api/events/stats", headers=auth(old)).status_code == 401
    # Nothing changed → nothing revoked.
    r = client.post("/api/users/login", json={"email": email, "password": "a-brand-new-pass-99"})
    token = r.json()["data"]["token"]
    assert User.ensure_admin(email, "a-brand-new-pass-99")[1] is False
    assert client.get("/api/events/stats", headers=auth(token)).status_code == 200


def test_seed_does_not_promote_a_squatted_admin_email(client: TestClient) -> None:
    from core.settings import get_settings
    from devstack.seed import seed_admin
    from models.user import User

    settings = get_settings()
    squatter = _register(client, settings.admin_email)
    line = seed_admin()
    assert "NOT created" in line and "--promote-existing" in line
    assert User.by_email(settings.admin_email).role == "customer"
    assert client.get("/api/events/stats", headers=auth(squatter)).status_code == 403
