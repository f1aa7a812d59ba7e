"""Settings: dev defaults work; production refuses placeholders, naming each one."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.settings import Settings

GOOD_PROD = {
    "app_env": "production",
    "jwt_secret": "x" * 48,
    "stripe_webhook_secret": "whsec_live_realvalue123",
    "stripe_api_key": "sk_live_abcdef123456",
    "stripe_publishable_key": "pk_live_abcdef123456",
    "admin_password": "a-strong-admin-pass-91",
    "flower_basic_auth": "ops:very-strong-pass-42",
    "data_keys": "k2:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
    "admin_email": "ops@shop.example.org",
    "metrics_token": "m" * 40,
    "stripe_api_base": "https://api.stripe.com",
}


def test_dev_defaults_load_without_env() -> None:
    s = Settings(_env_file=None, app_env="development")
    assert s.effective_broker_url == s.redis_url
    assert s.api_port == 8000 and s.flower_port == 5555
    assert "retryWrites=false" in s.mongodb_url


def test_broker_can_be_amqp() -> None:
    s = Settings(_env_file=None, broker_url="amqp://guest:guest@127.0.0.1:5672//")
    assert s.effective_broker_url.startswith("amqp://")


def test_production_accepts_real_secrets() -> None:
    s = Settings(_env_file=None, **GOOD_PROD)
    assert s.is_production


@pytest.mark.parametrize(
    ("field", "env_name"),
    [
        ("jwt_secret", "JWT_SECRET"),
        ("stripe_webhook_secret", "STRIPE_WEBHOOK_SECRET"),
        ("stripe_api_key", "STRIPE_API_KEY"),
        ("admin_password", "ADMIN_PASSWORD"),
        ("flower_basic_auth", "FLOWER_BASIC_AUTH"),
        ("data_keys", "DATA_KEYS"),
    ],
)
def test_production_refuses_dev_default(field: str, env_name: str) -> None:
    values = dict(GOOD_PROD)
    values.pop(field)  # falls back to the dev default
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None, **values)
    assert env_name in str(info.value)


def test_production_refuses_missing_stripe_key() -> None:
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None, **{**GOOD_PROD, "stripe_api_key": ""})
    assert "STRIPE_API_KEY is missing" in str(info.value)


def test_production_refuses_placeholder_marker() -> None:
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None, **{**GOOD_PROD, "jwt_secret": "please-change-me-" + "y" * 30})
    assert "JWT_SECRET is a development placeholder" in str(info.value)


def test_env_file_is_read(tmp_path, monkeypatch) -> None:
    env = tmp_path / ".env"
    env.write_text("API_PORT=9123\nTAX_RATE_BPS=1000\n")
    monkeypatch.delenv("API_PORT", raising=False)
    monkeypatch.delenv("TAX_RATE_BPS", raising=False)
    s = Settings(_env_file=str(env))
    assert s.api_port == 9123 and s.tax_rate_bps == 1000


def test_production_refuses_the_default_admin_email() -> None:
    values = dict(GOOD_PROD)
    values.pop("admin_email")
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None, **values)
    assert "ADMIN_EMAIL is the default admin@example.com" in str(info.value)
    with pytest.raises(ValidationError):
        Settings(_env_file=None, **{**GOOD_PROD, "admin_email": " Admin@Example.com "})


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"metrics_public": True, "metrics_token": ""}, "METRICS_PUBLIC"),
        ({"stripe_api_base": "http://api.stripe.com"}, "STRIPE_API_BASE"),
        ({"flower_basic_auth": "ops:short"}, "FLOWER_BASIC_AUTH"),
        ({"flower_basic_auth": "ops:opsopsopsops"}, "FLOWER_BASIC_AUTH"),
        ({"flower_basic_auth": "ops:aaaaaaaaaaaaaaaa"}, "FLOWER_BASIC_AUTH"),
        ({"flower_basic_auth": "no-colon-here-at-all"}, "FLOWER_BASIC_AUTH"),
        ({"stripe_webhook_tolerance": 0}, "STRIPE_WEBHOOK_TOLERANCE"),
        ({"stripe_webhook_tolerance": -5}, "STRIPE_WEBHOOK_TOLERANCE"),
        ({"jwt_lifetime_seconds": 3600 * 24 * 30}, "JWT_LIFETIME_SECONDS"),
    ],
)
def test_production_fails_closed(overrides: dict, named: str) -> None:
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None, **{**GOOD_PROD, **overrides})
    assert named in str(info.value)


def test_production_accepts_private_metrics_and_a_raised_jwt_cap() -> None:
    s = Settings(_env_file=None, **{**GOOD_PROD, "metrics_public": False, "metrics_token": ""})
    assert not s.metrics_public
    s = Settings(
        _env_file=None,
        **{**GOOD_PROD, "jwt_lifetime_seconds": 86400, "jwt_max_lifetime_seconds": 86400},
    )
    assert s.jwt_lifetime_seconds == 86400
