"""The schema says what the API answers: errors per operation, patterns, Allow on 405."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from api.routes.users import NAME_PATTERN

ENVELOPE = {"$ref": "#/components/schemas/FailureBody"}


def _operations(schema: dict):
    for path, item in schema["paths"].items():
        for method, op in item.items():
            yield path, method, op


def test_every_operation_documents_its_errors_with_the_envelope(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert "FailureBody" in schema["components"]["schemas"]
    for path, method, op in _operations(schema):
        codes = set(op["responses"])
        where = f"{method.upper()} {path}"
        assert "422" not in codes, where  # validation answers 400 here
        assert {"429", "503"} <= codes, where
        if op.get("security"):
            assert "401" in codes, where
        if "{" in path:
            assert "404" in codes, where
        if op.get("parameters") or op.get("requestBody"):
            assert "400" in codes, where
        for code in codes - {"200", "201", "202", "204"}:
            content = op["responses"][code].get("content", {}).get("application/json", {})
            assert content.get("schema") == ENVELOPE, (where, code)
    ops = {(p, m): op for p, m, op in _operations(schema)}
    assert "403" in ops[("/api/orders", "get")]["responses"]  # admin only
    assert "403" not in ops[("/api/orders/{order_id}", "get")]["responses"]  # 404 instead
    webhook = ops[("/api/payments/webhook", "post")]
    assert "400" in webhook["responses"]
    assert {p["name"] for p in webhook["parameters"]} == {"Stripe-Signature"}


def test_a_405_allows_every_method_of_the_path(client: TestClient) -> None:
    r = client.options("/api/products/NO-SUCH-SKU")
    assert r.status_code == 405 and r.json()["code"] == "METHOD_NOT_ALLOWED"
    assert {m.strip() for m in r.headers["allow"].split(",")} == {"GET", "PATCH"}
    r = client.put("/api/users/profile")
    assert r.status_code == 405
    assert {m.strip() for m in r.headers["allow"].split(",")} == {"GET", "PATCH", "DELETE"}


def test_name_pattern_is_the_rule_the_code_applies(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    first = schema["components"]["schemas"]["UserRegister"]["properties"]["firstName"]
    assert first["pattern"] == NAME_PATTERN
    body = {"email": "pattern@example.com", "password": "correct-horse-9", "lastName": "Lovelace"}
    for name in (" ", "", "bad\x00name", "A\u200bB", "\ued6e", "two  spaces"):
        assert re.fullmatch(NAME_PATTERN, name) is None, repr(name)
        r = client.post("/api/users/register", json={**body, "firstName": name})
        assert r.status_code == 400, (repr(name), r.text)
    for i, name in enumerate(("Ada", "Zoë", "O'Brien-Smith", "  José Luis ", "Дмитрий")):
        assert re.fullmatch(NAME_PATTERN, name), name
        r = client.post(
            "/api/users/register", json={**body, "email": f"p{i}@example.com", "firstName": name}
        )
        assert r.status_code == 201, (name, r.text)
        assert r.json()["data"]["user"]["firstName"] == name.strip()


def test_allow_follows_the_first_matching_template(client: TestClient) -> None:
    r = client.options("/api/orders/stats")
    assert r.status_code == 405 and r.headers["allow"] == "GET"
    r = client.options("/api/orders/0123456789abcdef01234567")
    assert {m.strip() for m in r.headers["allow"].split(",")} == {"GET", "PATCH", "DELETE"}


def test_blank_padded_overlong_names_and_special_use_emails_are_refused(client) -> None:
    body = {"email": "pad@example.com", "password": "correct-horse-9", "firstName": "A"}
    r = client.post("/api/users/register", json={**body, "lastName": " 0" + " " * 100})
    assert r.status_code == 400, r.text
    schema = client.get("/openapi.json").json()["components"]["schemas"]["UserRegister"]
    pattern = schema["properties"]["email"]["pattern"]
    for email in ("a@b.test", "a@x.localhost", "a@x.TEST", "a@nodot"):
        assert re.fullmatch(pattern, email) is None, email
        r = client.post("/api/users/register", json={**body, "lastName": "B", "email": email})
        assert r.status_code == 400, (email, r.text)
    assert re.fullmatch(pattern, "ada@example.com")


def test_login_takes_any_address_shaped_email(client: TestClient) -> None:
    r = client.post("/api/users/login", json={"email": "x@host.test", "password": "whatever-1"})
    assert r.status_code == 401
    r = client.post("/api/users/login", json={"email": "not an email", "password": "whatever-1"})
    assert r.status_code == 400


def test_blank_required_texts_are_documented_as_refused(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    reason = schemas["CancelBody"]["properties"]["reason"]
    assert reason["minLength"] == 1 and re.search(reason["pattern"], "\n") is None
    assert re.search(reason["pattern"], " ok ")
