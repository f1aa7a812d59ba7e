"""Production fails closed: the real API process refuses unsafe settings; tokens and /metrics."""

from __future__ import annotations

import subprocess
import time
import uuid

import httpx
import jwt as pyjwt
import pytest
from fastapi.testclient import TestClient

from devstack import processes

# Real-looking production secrets, so only the setting under test is wrong.
PRODUCTION_ENV = {
    "APP_ENV": "production",
    "JWT_SECRET": "p" * 48,
    "STRIPE_WEBHOOK_SECRET": "whsec_live_realvalue123",
    "STRIPE_API_KEY": "sk_live_abcdef123456",
    "STRIPE_PUBLISHABLE_KEY": "pk_live_abcdef123456",
    "ADMIN_PASSWORD": "a-strong-admin-pass-91",
    "ADMIN_EMAIL": "ops@shop.example.org",
    "FLOWER_BASIC_AUTH": "ops:very-strong-pass-42",
    "DATA_KEYS": "k2:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
    # Nothing listens there: startup must not need Stripe.
    "STRIPE_API_BASE": "https://127.0.0.1:9",
    "METRICS_PUBLIC": "false",
}


def _start_api(artifacts_dir, env: dict[str, str]) -> tuple[subprocess.Popen, int, object]:
    port = processes.free_port()
    log_path = artifacts_dir / f"prod-api-{uuid.uuid4().hex[:6]}.log"
    proc = processes.spawn(
        processes.api_args(port),
        env=env,
        log_path=log_path,
    )
    return proc, port, log_path


def test_production_api_refuses_to_start_with_public_metrics_and_no_token(
    services, artifacts_dir
) -> None:
    env = {**PRODUCTION_ENV, "METRICS_PUBLIC": "true", "METRICS_TOKEN": ""}
    proc, port, log_path = _start_api(artifacts_dir, env)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        processes.stop(proc)
        pytest.fail(f"the production API started with public metrics on :{port}")
    output = log_path.read_text(errors="replace")
    assert proc.returncode != 0
    assert "refusing to start in production" in output
    assert "METRICS_PUBLIC" in output and "METRICS_TOKEN" in output
    assert not processes.port_open(port)


def test_production_api_starts_with_safe_settings_and_guards_metrics(
    services, artifacts_dir
) -> None:
    """The control: the same environment with a metrics token starts and serves."""
    token = "metrics-" + uuid.uuid4().hex
    env = {**PRODUCTION_ENV, "METRICS_PUBLIC": "true", "METRICS_TOKEN": token}
    proc, port, log_path = _start_api(artifacts_dir, env)
    try:
        processes.wait_port(port, 60, proc)
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/metrics", timeout=5).status_code == 401
        r = httpx.get(f"{base}/metrics", headers={"Authorization": "Bearer wrong"}, timeout=5)
        assert r.status_code == 401
        r = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=5)
        assert r.status_code == 200 and "oms_step_seconds" in r.text
    finally:
        processes.stop(proc)
    assert "refusing" not in log_path.read_text(errors="replace")


def test_tokens_carry_iss_and_aud_and_both_are_checked(client: TestClient) -> None:
    from core.settings import get_settings

    settings = get_settings()
    r = client.post(
        "/api/users/register",
        json={
            "email": f"iss-{uuid.uuid4().hex[:8]}@example.com",
            "password": "iss-aud-pass-1",
            "firstName": "I",
            "lastName": "A",
        },
    )
    token = r.json()["data"]["token"]
    claims = pyjwt.decode(token, options={"verify_signature": False})
    assert claims["iss"] == settings.jwt_issuer and claims["aud"] == settings.jwt_audience
    assert client.get("/api/users/profile", headers={"Authorization": f"Bearer {token}"}).is_success

    def signed(**changes) -> str:
        payload = {**claims, **changes, "exp": int(time.time()) + 600}
        payload = {k: v for k, v in payload.items() if v is not None}
        return pyjwt.encode(payload, settings.jwt_secret, algorithm="HS256")

    for bad in (
        signed(aud="another-service"),
        signed(iss="someone-else"),
        signed(aud=None),
        signed(iss=None),
    ):
        r = client.get("/api/users/profile", headers={"Authorization": f"Bearer {bad}"})
        assert r.status_code == 401, r.text
