"""Envelope, error formats, correlation header, body limits, docs served locally."""

from __future__ import annotations

import re

from pydantic import Field

from api.schemas import ApiModel


class Thing(ApiModel):
    first_name: str = Field(min_length=1)
    quantity: int = Field(ge=1, le=100)


def test_unknown_route_is_404_in_envelope(client) -> None:
    r = client.get("/api/nope")
    assert r.status_code == 404
    body = r.json()
    assert body["status"] == "fail" and body["code"] == "NOT_FOUND"
    assert body["correlationId"] == r.headers["x-correlation-id"]


def test_wrong_method_is_405_in_envelope(client) -> None:
    r = client.post("/health")
    assert r.status_code == 405
    assert r.json()["code"] == "METHOD_NOT_ALLOWED"


def test_correlation_id_echoed_when_safe(client) -> None:
    r = client.get("/ready", headers={"X-Correlation-ID": "abc-123.x"})
    assert r.headers["x-correlation-id"] == "abc-123.x"


def test_correlation_id_minted_when_unsafe_or_missing(client) -> None:
    r = client.get("/ready", headers={"X-Correlation-ID": "bad id <script>" + "x" * 80})
    minted = r.headers["x-correlation-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", minted)
    r2 = client.get("/ready")
    assert re.fullmatch(r"[0-9a-f]{32}", r2.headers["x-correlation-id"])
    assert r2.headers["x-correlation-id"] != minted


def test_oversized_body_is_413(client) -> None:
    r = client.post(
        "/api/anything",
        content=b"x" * (64 * 1024 + 1),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413
    assert r.json()["code"] == "PAYLOAD_TOO_LARGE"
    assert "x-correlation-id" in r.headers


def test_security_headers(client) -> None:
    r = client.get("/ready")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert "default-src 'self'" in r.headers["content-security-policy"]


def test_swagger_ui_served_without_cdn(client) -> None:
    r = client.get("/api-docs")
    assert r.status_code == 200
    assert "/static/swagger/swagger-ui-bundle.js" in r.text
    assert "cdn" not in r.text.lower()
    js = client.get("/static/swagger/swagger-ui-bundle.js")
    assert js.status_code == 200 and len(js.content) > 100_000
    assert client.get("/openapi.json").json()["info"]["title"]


def test_metrics_exposed(client) -> None:
    client.get("/ready")
    r = client.get("/metrics")
    assert r.status_code == 200
    assert "oms_http_request_seconds" in r.text
    assert "oms_queue_depth" in r.text and "oms_orders_by_status" in r.text


def test_unhandled_error_is_500_without_trace(app) -> None:
    from fastapi.testclient import TestClient

    @app.get("/api/_boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/api/_boom")
    assert r.status_code == 500
    body = r.json()
    assert body == {
        "status": "error",
        "message": "internal server error",
        "code": "INTERNAL_ERROR",
        "correlationId": r.headers["x-correlation-id"],
    }
    assert "secret internals" not in r.text and "Traceback" not in r.text


def test_validation_error_names_field_and_rejects_unknown(app) -> None:
    from fastapi.testclient import TestClient

    @app.post("/api/_things")
    def make(thing: Thing) -> dict:
        return {"ok": True}

    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post("/api/_things", json={"firstName": "a", "quantity": 0, "price": 1})
        bad_json = c.post(
            "/api/_things", content=b"{nope", headers={"content-type": "application/json"}
        )
    assert r.status_code == 400
    body = r.json()
    assert body["status"] == "fail" and body["code"] == "VALIDATION_ERROR"
    fields = {e["field"]: e["message"] for e in body["errors"]}
    assert "quantity" in fields
    assert fields["price"] == "unknown field"
    assert bad_json.status_code == 400
