"""Typed settings: the only place the environment is read.

Dev defaults work out of the box; with ``APP_ENV=production`` the app refuses to
start on a dev/placeholder secret or a missing Stripe key, naming the setting.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Values that must never reach production; each dev default below is one of them.
DEV_JWT_SECRET = "dev-jwt-secret-change-me-0123456789abcdef"
DEV_WEBHOOK_SECRET = "whsec_dev_change_me"
DEV_STRIPE_KEY = "sk_test_dev_localstripe"
DEV_PUBLISHABLE_KEY = "pk_test_dev_localstripe"
DEV_ADMIN_PASSWORD = "admin-password-change-me"
DEV_FLOWER_AUTH = "admin:admin"
# 32 zero-free bytes, base64: a dev-only data key (AES-256-GCM) under key id "dev1".
DEV_DATA_KEYS = "dev1:ZGV2LWRhdGEta2V5LWNoYW5nZS1tZS0wMTIzNDU2Nzg="
PLACEHOLDER_MARKERS = ("change-me", "change_me", "changeme", "dev_change", "placeholder")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    app_env: Literal["development", "test", "production"] = "development"
    app_name: str = "order-management-service"
    log_level: str = "INFO"
    log_json: bool = True

    # Infrastructure
    mongodb_url: str = "mongodb://127.0.0.1:27017/oms?retryWrites=false"
    mongodb_server_selection_ms: int = 2000
    redis_url: str = "redis://127.0.0.1:6379/0"
    broker_url: str = ""  # empty → redis_url; amqp:// also works
    broker_visibility_timeout: int = 120

    # Stripe (localstripe in dev/test, Stripe in production)
    stripe_api_key: str = DEV_STRIPE_KEY
    stripe_api_base: str = "http://127.0.0.1:8420"
    stripe_publishable_key: str = DEV_PUBLISHABLE_KEY
    stripe_webhook_secret: str = DEV_WEBHOOK_SECRET
    stripe_webhook_tolerance: int = 300
    stripe_timeout_seconds: float = 10.0

    # Auth
    jwt_secret: str = DEV_JWT_SECRET
    jwt_lifetime_seconds: int = 3600 * 12
    admin_email: str = "admin@example.com"
    admin_password: str = DEV_ADMIN_PASSWORD
    data_keys: str = Field(
        default=DEV_DATA_KEYS,
        description="comma-separated keyid:base64key; the first one encrypts new data",
    )

    # Ports and web
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    public_base_url: str = "http://127.0.0.1:8000"
    flower_port: int = 5555
    flower_basic_auth: str = DEV_FLOWER_AUTH
    cors_origins: str = "http://127.0.0.1:8000,http://localhost:8000"
    max_body_bytes: int = 64 * 1024
    metrics_public: bool = True
    metrics_token: str = ""
    # prometheus_client's own variable: set for the API and workers to aggregate metrics
    prometheus_multiproc_dir: str = ""

    # Health
    health_check_timeout_ms: int = 800

    # Money (integer minor units)
    currency: str = "usd"
    tax_rate_bps: int = 825
    shipping_cents: int = 599

    # Rate limits (limits' syntax); "" switches a limit off
    rate_limit_default: str = "300/minute"
    rate_limit_login: str = "5/minute"
    rate_limit_orders: str = "60/minute"

    # Lifecycle thresholds (seconds)
    stuck_order_seconds: int = 120
    stuck_max_resumes: int = 3
    stuck_max_backlog: int = 200  # queue length above which nothing counts as stuck
    orphan_intent_grace_seconds: int = 60
    payment_window_seconds: int = 1800
    delivery_delay_seconds: int = 60
    refund_window_seconds: int = 14 * 24 * 3600
    low_stock_threshold: int = 5
    retry_backoff_cap: int = 30
    retry_max: int = 5
    task_soft_time_limit: int = 60
    task_time_limit: int = 90
    webhook_id_ttl_seconds: int = 7 * 24 * 3600
    idempotency_ttl_seconds: int = 24 * 3600

    # Beat intervals (seconds)
    beat_reconcile_interval: float = 15.0
    beat_outbox_interval: float = 5.0
    beat_health_interval: float = 60.0

    # Events: bus channel, outbox sweep, handler plugins, WebSocket
    # Pub/sub ignores Redis db numbers: deployments sharing one server need distinct channels.
    events_channel: str = "oms:events"
    outbox_sweep_min_age: float = 2.0  # seconds an outbox event waits before the sweep takes it
    event_handler_modules: str = ""  # comma-separated extra handler modules (tests, plugins)
    ws_ping_interval: float = 25.0
    ws_auth_timeout: float = 10.0
    ws_resume_wait: float = 0.3  # how long a fresh socket waits for a resume before going live

    # Paths
    data_dir: str = ".data"

    # Scale out (issue 18): RabbitMQ queues, Redis failover, beat locks, draining
    broker_quorum_queues: bool = True  # on amqp://: quorum queues (topic exchanges, DLX)
    broker_delivery_limit: int = 10  # deliveries of one message before it is dead-lettered
    redis_sentinel_master: str = "mymaster"  # service name for redis+sentinel:// URLs
    shutdown_drain_seconds: float = 20.0  # API: SIGTERM → /ready 503, then this long to drain
    revocation_cache_seconds: int = 30  # Redis answers revocation checks alone this long

    @property
    def effective_broker_url(self) -> str:
        return self.broker_url or self.redis_url

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    @model_validator(mode="after")
    def _refuse_dev_secrets_in_production(self) -> Settings:
        if not self.is_production:
            return self
        problems: list[str] = []
        checks = {
            "JWT_SECRET": (self.jwt_secret, DEV_JWT_SECRET),
            "STRIPE_WEBHOOK_SECRET": (self.stripe_webhook_secret, DEV_WEBHOOK_SECRET),
            "STRIPE_API_KEY": (self.stripe_api_key, DEV_STRIPE_KEY),
            "STRIPE_PUBLISHABLE_KEY": (self.stripe_publishable_key, DEV_PUBLISHABLE_KEY),
            "ADMIN_PASSWORD": (self.admin_password, DEV_ADMIN_PASSWORD),
            "FLOWER_BASIC_AUTH": (self.flower_basic_auth, DEV_FLOWER_AUTH),
            "DATA_KEYS": (self.data_keys, DEV_DATA_KEYS),
        }
        for name, (value, dev_value) in checks.items():
            if not value:
                problems.append(f"{name} is missing")
            elif value == dev_value or any(m in value.lower() for m in PLACEHOLDER_MARKERS):
                problems.append(f"{name} is a development placeholder")
        if len(self.jwt_secret) < 32:
            problems.append("JWT_SECRET must be at least 32 characters")
        if self.stripe_api_key and not self.stripe_api_key.startswith(("sk_", "rk_")):
            problems.append("STRIPE_API_KEY must be a Stripe secret key (sk_…)")
        if problems:
            raise ValueError("refusing to start in production: " + "; ".join(problems))
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
