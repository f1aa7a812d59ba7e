"""Users API against real Mongo and Redis: accounts, tokens, bad input, roles, events, CLI."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from bson import ObjectId
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from api.deps import AdminUser, CurrentUser, ensure_owner_or_admin

PASSWORD = "correct horse 42"
PHONE = "+15551234567"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def register(client: TestClient, email: str | None = None, **extra: str) -> dict:
    body = {
        "email": email or f"u-{uuid.uuid4().hex[:10]}@example.com",
        "password": PASSWORD,
        "firstName": "Ada",
        "lastName": "Lovelace",
        **extra,
    }
    r = client.post("/api/users/register", json=body)
    assert r.status_code == 201, r.text
    return r.json()["data"]


def login(client: TestClient, email: str, password: str = PASSWORD) -> str:
    r = client.post("/api/users/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    return r.json()["data"]["token"]


def include_first(app: FastAPI, router: APIRouter) -> None:
    """Add test-only routes ahead of the dashboard's catch-all "/" mount."""
    app.include_router(router)
    app.router.routes.insert(0, app.router.routes.pop())


def raw_user(email: str) -> dict:
    from core.db import get_db

    doc = get_db()["users"].find_one({"email": email})
    assert doc is not None
    return doc


def test_round_trip_register_login_profile_logout_delete(client: TestClient) -> None:
    data = register(client, "Round.Trip@Example.com")
    user = data["user"]
    assert user["email"] == "round.trip@example.com"
    assert user["role"] == "customer" and user["active"] is True
    assert user["phone"] is None and user["stripeCustomerId"] is None
    assert set(user) == {
        "id",
        "email",
        "firstName",
        "lastName",
        "phone",
        "role",
        "active",
        "emailVerified",
        "stripeCustomerId",
        "createdAt",
    }
    assert user["emailVerified"] is False
    first_token = data["token"]

    token = login(client, "ROUND.trip@example.com ")
    r = client.get("/api/users/profile", headers=auth(token))
    assert r.status_code == 200 and r.json()["data"]["user"]["id"] == user["id"]

    r = client.patch(
        "/api/users/profile", headers=auth(token), json={"firstName": "Augusta", "phone": PHONE}
    )
    assert r.status_code == 200, r.text
    assert r.json()["data"]["user"]["firstName"] == "Augusta"
    assert r.json()["data"]["user"]["phone"] == PHONE
    assert "token" not in r.json()["data"]

    r = client.patch("/api/users/profile", headers=auth(token), json={"phone": None})
    assert r.status_code == 200 and r.json()["data"]["user"]["phone"] is None

    r = client.post("/api/users/logout", headers=auth(token))
    assert r.status_code == 200 and r.json()["message"] == "logged out"
    r = client.get("/api/users/profile", headers=auth(token))
    assert r.status_code == 401 and r.json()["code"] == "UNAUTHORIZED"
    assert r.json()["message"] == "token revoked"
    # Logging out one session leaves the others alone.
    assert client.get("/api/users/profile", headers=auth(first_token)).status_code == 200

    r = client.delete("/api/users/profile", headers=auth(first_token))
    assert r.status_code == 200
    assert client.get("/api/users/profile", headers=auth(first_token)).status_code == 401
    r = client.post(
        "/api/users/login", json={"email": "round.trip@example.com", "password": PASSWORD}
    )
    assert r.status_code == 401 and r.json()["code"] == "INVALID_CREDENTIALS"
    assert raw_user("round.trip@example.com")["active"] is False


def user_events(user_id: str) -> list[dict]:
    """The user's events wherever they are now: still in the outbox or already stored.

    A worker may be dispatching meanwhile; it stores an event before pulling it from the
    outbox, so reading the outbox first and the store second misses none.
    """
    from core.db import get_db

    db = get_db()
    doc = db["users"].find_one({"_id": ObjectId(user_id)}) or {}
    found = {e["eventId"]: e for e in doc.get("outbox", [])}
    for stored in db["events"].find({"aggregateId": user_id}):
        found.setdefault(stored["_id"], stored)
    return sorted(found.values(), key=lambda e: e["aggregateVersion"])


def test_every_change_emits_its_event_without_secrets(client: TestClient) -> None:
    data = register(client, "events@example.com", phone=PHONE)
    token = login(client, "events@example.com")
    client.patch("/api/users/profile", headers=auth(token), json={"phone": "+442071234567"})
    client.delete("/api/users/profile", headers=auth(token))
    user_id = data["user"]["id"]
    events = user_events(user_id)
    assert [e["type"] for e in events] == [
        "user.created",
        "user.login",
        "user.updated",
        "user.deleted",
    ]
    assert [e["aggregateVersion"] for e in events] == [1, 2, 3, 4]
    assert raw_user("events@example.com")["version"] == 4
    assert all(e["aggregateId"] == user_id and e["userId"] == user_id for e in events)
    assert all(e["correlationId"] for e in events)
    assert events[2]["data"] == {"fields": ["phone"]}
    dumped = json.dumps(events, default=str)
    assert "argon2" not in dumped and "1555" not in dumped and "4420" not in dumped


def test_duplicate_email_in_any_case_is_409(client: TestClient) -> None:
    register(client, "dup@example.com")
    for email in ("dup@example.com", "DUP@Example.COM", "  Dup@example.com "):
        r = client.post(
            "/api/users/register",
            json={"email": email, "password": PASSWORD, "firstName": "A", "lastName": "B"},
        )
        assert r.status_code == 409, (email, r.text)
        assert r.json()["code"] == "EMAIL_TAKEN"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": "a@b"}, "email"),
        ({"password": "short"}, "password"),
        ({"password": "x" * 129}, "password"),
        ({"firstName": ""}, "firstName"),
        ({"lastName": "x" * 101}, "lastName"),
        ({"firstName": "bad\x00name"}, "firstName"),
        ({"phone": "call me"}, "phone"),
        ({"nickname": "ada"}, "nickname"),
        ({"role": "admin"}, "role"),
    ],
)
def test_register_rejects_bad_input_naming_the_field(
    client: TestClient, change: dict, field: str
) -> None:
    body = {"email": "ok@example.com", "password": PASSWORD, "firstName": "A", "lastName": "B"}
    r = client.post("/api/users/register", json={**body, **change})
    assert r.status_code == 400, r.text
    payload = r.json()
    assert payload["status"] == "fail" and payload["code"] == "VALIDATION_ERROR"
    assert field in {e["field"] for e in payload["errors"]}


def test_unknown_field_message_and_oversized_body(client: TestClient) -> None:
    body = {"email": "ok@example.com", "password": PASSWORD, "firstName": "A", "lastName": "B"}
    r = client.post("/api/users/register", json={**body, "isAdmin": True})
    assert {"field": "isAdmin", "message": "unknown field"} in r.json()["errors"]
    big = {**body, "firstName": "x" * (64 * 1024)}
    r = client.post("/api/users/register", json=big)
    assert r.status_code == 413 and r.json()["code"] == "PAYLOAD_TOO_LARGE"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/users/login", {"email": {"$gt": ""}, "password": {"$gt": ""}}),
        ("/api/users/login", {"email": "a@example.com", "password": {"$ne": None}}),
        ("/api/users/login", {"email": {"$regex": ".*"}, "password": "whatever1"}),
        (
            "/api/users/register",
            {"email": {"$gt": ""}, "password": PASSWORD, "firstName": "A", "lastName": "B"},
        ),
        (
            "/api/users/register",
            {
                "email": "n@example.com",
                "password": PASSWORD,
                "firstName": {"$ne": 1},
                "lastName": "B",
            },
        ),
    ],
)
def test_nosql_operator_injection_is_a_validation_error(
    client: TestClient, path: str, body: dict
) -> None:
    register(client, "a@example.com")
    r = client.post(path, json=body)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "VALIDATION_ERROR"


def test_profile_patch_rejects_operators_and_unknown_fields(client: TestClient) -> None:
    token = register(client)["token"]
    for body in ({"firstName": {"$gt": ""}}, {"email": "new@example.com"}, {"role": "admin"}):
        r = client.patch("/api/users/profile", headers=auth(token), json=body)
        assert r.status_code == 400, (body, r.text)


def test_unknown_email_and_wrong_password_give_the_same_401(client: TestClient) -> None:
    register(client, "known@example.com")
    wrong = client.post(
        "/api/users/login", json={"email": "known@example.com", "password": "wrong-password"}
    )
    unknown = client.post(
        "/api/users/login", json={"email": "nobody@example.com", "password": "wrong-password"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["code"] == "INVALID_CREDENTIALS"

    def without_cid(r: httpx.Response) -> bytes:
        return r.content.replace(r.json()["correlationId"].encode(), b"<cid>")

    assert without_cid(wrong) == without_cid(unknown)
    skip = {"x-correlation-id", "date"}
    assert {k: v for k, v in wrong.headers.items() if k not in skip} == {
        k: v for k, v in unknown.headers.items() if k not in skip
    }


def test_password_change_needs_current_password_and_revokes_other_tokens(
    client: TestClient,
) -> None:
    email = register(client, "pw@example.com")["user"]["email"]
    session_a = login(client, email)
    session_b = login(client, email)

    r = client.patch("/api/users/profile", headers=auth(session_a), json={"password": "n3w-pass!"})
    assert r.status_code == 400
    assert r.json()["errors"] == [
        {"field": "currentPassword", "message": "required to change the password"}
    ]
    r = client.patch(
        "/api/users/profile",
        headers=auth(session_a),
        json={"password": "n3w-pass!", "currentPassword": "not-it-at-all"},
    )
    assert r.status_code == 400 and r.json()["code"] == "INVALID_CURRENT_PASSWORD"

    r = client.patch(
        "/api/users/profile",
        headers=auth(session_a),
        json={"password": "n3w-pass!", "currentPassword": PASSWORD},
    )
    assert r.status_code == 200, r.text
    fresh = r.json()["data"]["token"]
    for old in (session_a, session_b):
        r = client.get("/api/users/profile", headers=auth(old))
        assert r.status_code == 401 and r.json()["message"] == "token revoked"
    assert client.get("/api/users/profile", headers=auth(fresh)).status_code == 200
    r = client.post("/api/users/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 401
    login(client, email, "n3w-pass!")


def test_expired_tampered_and_foreign_tokens_are_401(client: TestClient) -> None:
    import jwt as pyjwt

    from core.security import create_access_token, now_ms
    from core.settings import get_settings

    settings = get_settings()
    data = register(client)
    user_id = data["user"]["id"]
    expired, _ = create_access_token(
        user_id,
        "customer",
        settings,
        issued_ms=now_ms() - (settings.jwt_lifetime_seconds + 5) * 1000,
    )
    head, payload, sig = data["token"].split(".")
    tampered = f"{head}.{payload}.{sig[:-3]}{'AAA' if sig[-3:] != 'AAA' else 'BBB'}"
    forged_payload = {"sub": user_id, "role": "admin", "jti": "x", "iat": 1, "exp": 4102444800}
    foreign = pyjwt.encode(forged_payload, "some-other-secret-0123456789abcdef", algorithm="HS256")
    unsigned = pyjwt.encode(forged_payload, None, algorithm="none")
    missing_jti, _ = create_access_token(user_id, "customer", settings)
    claims = pyjwt.decode(missing_jti, options={"verify_signature": False})
    del claims["jti"]
    missing_jti = pyjwt.encode(claims, settings.jwt_secret, algorithm="HS256")
    unknown_user, _ = create_access_token("0" * 24, "customer", settings)
    cases = {
        "token expired": expired,
        "invalid token": tampered,
    }
    for message, token in cases.items():
        r = client.get("/api/users/profile", headers=auth(token))
        assert r.status_code == 401 and r.json()["message"] == message
    for token in (foreign, unsigned, missing_jti, unknown_user, "garbage"):
        r = client.get("/api/users/profile", headers=auth(token))
        assert r.status_code == 401, token
        assert r.headers["www-authenticate"] == "Bearer"
    assert client.get("/api/users/profile").status_code == 401
    r = client.get("/api/users/profile", headers={"Authorization": f"Basic {data['token']}"})
    assert r.status_code == 401


def test_admin_dependency_and_ownership_helper(app) -> None:
    from models.user import User

    probes = APIRouter()

    # Annotations are strings here: the aliases must be module globals for FastAPI.
    @probes.get("/api/_admin_only")
    def admin_only(admin: AdminUser) -> dict:
        return {"admin": admin.email}

    @probes.get("/api/_things/{owner_id}")
    def thing(owner_id: str, user: CurrentUser) -> dict:
        ensure_owner_or_admin(user, owner_id, "thing")
        return {"owner": owner_id}

    include_first(app, probes)
    User.ensure_admin("boss@example.com", PASSWORD)
    with TestClient(app, raise_server_exceptions=False) as c:
        owner = register(c)
        other = register(c)
        admin_token = login(c, "boss@example.com")
        owner_id = owner["user"]["id"]
        r = c.get("/api/_admin_only", headers=auth(owner["token"]))
        assert r.status_code == 403 and r.json()["code"] == "FORBIDDEN"
        assert c.get("/api/_admin_only", headers=auth(admin_token)).status_code == 200
        assert c.get(f"/api/_things/{owner_id}", headers=auth(owner["token"])).status_code == 200
        r = c.get(f"/api/_things/{owner_id}", headers=auth(other["token"]))
        assert r.status_code == 404 and r.json()["code"] == "THING_NOT_FOUND"
        assert c.get(f"/api/_things/{owner_id}", headers=auth(admin_token)).status_code == 200


def test_create_admin_command_and_seed_are_idempotent(services, clean_data) -> None:
    from typer.testing import CliRunner

    import manage
    from devstack.seed import seed_all
    from models.user import User

    runner = CliRunner()
    args = ["create-admin", "--email", "Ops@Example.com", "--password", "ops-password-1"]
    result = runner.invoke(manage.cli, args)
    assert result.exit_code == 0, result.output
    assert "created" in result.output
    again = runner.invoke(manage.cli, args)
    assert "already up to date" in again.output
    admin = User.by_email("ops@example.com")
    assert admin is not None and admin.role == "admin" and admin.version == 1
    short = runner.invoke(
        manage.cli, ["create-admin", "--email", "x@example.com", "--password", "1"]
    )
    assert short.exit_code != 0

    first = list(seed_all())
    second = list(seed_all())
    assert any("admin" in line and "created" in line for line in first)
    assert any("admin" in line and "up to date" in line for line in second)
    from core.settings import get_settings

    seeded = User.by_email(get_settings().admin_email)
    assert seeded is not None and seeded.role == "admin" and seeded.version == 1
