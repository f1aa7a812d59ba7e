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
DEFAULT_ADMIN_EMAIL = "admin@example.com"
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
    # Production refuses a JWT_LIFETIME_SECONDS above this cap.
    jwt_max_lifetime_seconds: int = 3600 * 12
    # Every token carries iss and aud; decoding checks both.
    jwt_issuer: str = "order-management-service"
    jwt_audience: str = "oms-api"
    admin_email: str = DEFAULT_ADMIN_EMAIL
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
    health_cache_seconds: float = 1.5  # /health reuses its checks this long (0: no cache)

    # Money (integer minor units)
    currency: str = "usd"
    tax_rate_bps: int = 825
    shipping_cents: int = 599

    # Rate limits (limits' syntax); "" switches a limit off
    rate_limit_default: str = "300/minute"
    rate_limit_login: str = "5/minute"
    rate_limit_orders: str = "60/minute"
    rate_limit_api_key: str = "600/minute"  # per API key, in place of the default limit
    rate_limit_health: str = "60/minute"  # /health per client (each call pings every worker)
    # Login/registration abuse (issue 15): per client across all emails (spraying), and
    # registrations per client. Not faster than login: see README, Security.
    rate_limit_login_client: str = "20/minute"
    rate_limit_register: str = "10/hour"
    # Per-account lockout across all clients: from the Nth failure in the window, each
    # failure locks the email for base * 2**(n - N) seconds, at most max. 0 switches it off.
    login_lockout_threshold: int = 5
    login_lockout_base_seconds: int = 30
    login_lockout_max_seconds: int = 900
    login_failure_window_seconds: int = 3600
    # Client addresses behind a proxy: X-Forwarded-For/-Proto are honoured only from these
    # peers (comma-separated IPs or CIDRs, "*" = any; empty = none). Pass the same value to
    # uvicorn (--forwarded-allow-ips, or FORWARDED_ALLOW_IPS) so it does not trust its own
    # default (127.0.0.1) instead.
    trusted_proxies: str = ""
    # Stripe's webhook has its own bucket per sender, apart from public traffic.
    rate_limit_webhook: str = "600/minute"

    # HTTP hardening: HSTS on https responses (0: off), a deadline per request (0: off).
    hsts_seconds: int = 31536000
    request_timeout_seconds: float = 30.0

    # Stock hoarding (api/order_limits.py); 0 switches a limit off.
    max_unpaid_orders_per_customer: int = 3
    max_unpaid_units_per_product: int = 10
    order_placement_lock_wait: float = 3.0
    # Orders placed without a payment method hold stock this long (the payments sweep
    # times them out, like payment_window_seconds for the others, whichever is shorter).
    unpaid_hold_no_method_seconds: int = 900

    # Lifecycle thresholds (seconds)
    stuck_order_seconds: int = 120
    stuck_max_resumes: int = 3
    stuck_max_backlog: int = 200  # queue length above which nothing counts as stuck
    orphan_intent_grace_seconds: int = 60
    payment_window_seconds: int = 1800
    delivery_delay_seconds: int = 60
    refund_window_seconds: int = 14 * 24 * 3600
    return_window_seconds: int = 30 * 24 * 3600  # after delivery, a customer may ask to return
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
    ws_max_message_bytes: int = 4096  # a client frame over this closes the socket (1009)
    ws_max_sockets_per_user: int = 5  # per API process; one more is closed with 4429
    ws_resume_per_minute: int = 10  # per socket; more answer an error RATE_LIMITED

    # Outgoing webhooks (shops' systems subscribing to our events)
    webhook_timeout_seconds: float = 5.0  # per attempt: connect + answer
    webhook_retry_base_seconds: float = 10.0  # first retry after ~this, doubling each time
    webhook_retry_max_seconds: float = 3600.0  # the step stops doubling here
    webhook_max_attempts: int = 12  # ~3.5 h of retries with the defaults, then "failed"
    # A subscription is disabled after this many failed attempts in a row spanning at least
    # this long (both): a receiver down for a deploy is retried, a dead one is cut off.
    webhook_disable_after: int = 30
    webhook_disable_after_seconds: float = 24 * 3600.0
    webhook_allowed_hosts: str = ""  # comma-separated hosts allowed despite a private address
    webhook_body_log_chars: int = 500  # of each answer, kept in the delivery log
    beat_webhook_interval: float = 5.0  # how often beat sends the deliveries that are due

    # Email (SMTP); an empty host sends nothing (make up runs a local sink on :1025)
    smtp_host: str = ""
    smtp_port: int = 1025
    smtp_security: Literal["none", "starttls", "tls"] = "none"
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_timeout_seconds: float = 10.0
    mail_from: str = "Order Service <orders@example.com>"
    mail_sink_dir: str = ""  # the dev sink's folder: the admin view lists what it caught
    password_reset_ttl_seconds: int = 3600
    email_verification_ttl_seconds: int = 3 * 24 * 3600
    # Payments as Stripe runs them (issue 14)
    # automatic: charge at order; manual: authorize at order, capture at ship.
    payment_capture: Literal["automatic", "manual"] = "automatic"
    # Stripe keeps an uncaptured card authorization 7 days; act this long before it lapses.
    authorization_validity_seconds: int = 7 * 24 * 3600
    authorization_expiry_margin_seconds: int = 12 * 3600
    # The intents sweep (orphans, money kept for unshipped orders): intents created within
    # the lookback, at most this many (newest first) per run.
    auto_refund_lookback_seconds: int = 2 * 24 * 3600
    auto_refund_scan_limit: int = 1000

    # Observability (issue 19): traces are off unless an OTLP endpoint or a spans file is set
    otel_exporter_otlp_endpoint: str = ""  # OTLP/HTTP base, e.g. http://127.0.0.1:4318
    otel_spans_file: str = ""  # JSON lines of finished spans (tests, debugging)
    otel_service_name: str = "oms"  # each process reports oms-api, oms-worker, oms-beat
    # The tracing UI's page of one trace, e.g. http://127.0.0.1:16686/trace/{trace_id}
    tracing_ui_url: str = ""
    # The per-host worker exporter (0: off); needs PROMETHEUS_MULTIPROC_DIR, one per host
    worker_metrics_port: int = 0
    worker_metrics_host: str = "127.0.0.1"

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
        problems += self._production_security_problems()
        if problems:
            raise ValueError("refusing to start in production: " + "; ".join(problems))
        return self

    # -- security checks for production (issue 15); each names its setting ---------------

    def _production_security_problems(self) -> list[str]:
        problems: list[str] = []
        if normalized_email(self.admin_email) == DEFAULT_ADMIN_EMAIL:
            problems.append(
                f"ADMIN_EMAIL is the default {DEFAULT_ADMIN_EMAIL}: anyone could register it first"
            )
        if self.metrics_public and not self.metrics_token:
            problems.append(
                "METRICS_PUBLIC=true without METRICS_TOKEN would publish /metrics to anyone: "
                "set METRICS_TOKEN (or METRICS_PUBLIC=false)"
            )
        if not self.stripe_api_base.lower().startswith("https://"):
            problems.append("STRIPE_API_BASE must be an https:// URL")
        if self.stripe_webhook_tolerance <= 0:
            problems.append("STRIPE_WEBHOOK_TOLERANCE must be > 0 (seconds; 0 accepts replays)")
        if self.jwt_lifetime_seconds > self.jwt_max_lifetime_seconds:
            problems.append(
                f"JWT_LIFETIME_SECONDS {self.jwt_lifetime_seconds} is above "
                f"JWT_MAX_LIFETIME_SECONDS {self.jwt_max_lifetime_seconds}"
            )
        if self.jwt_lifetime_seconds <= 0:
            problems.append("JWT_LIFETIME_SECONDS must be > 0")
        problems += _flower_auth_problems(self.flower_basic_auth)
        if not self.jwt_issuer or not self.jwt_audience:
            problems.append("JWT_ISSUER and JWT_AUDIENCE must not be empty")
        return problems


FLOWER_MIN_PASSWORD = 12
_COMMON_PASSWORDS = frozenset(
    {"admin", "password", "changeme", "letmein", "flower", "celery", "123456", "qwerty"}
)


def _flower_auth_problems(value: str) -> list[str]:
    """Flower's --basic-auth takes user:password pairs separated by commas."""
    problems: list[str] = []
    for pair in (p for p in value.split(",") if p.strip()):
        user, sep, password = pair.partition(":")
        if not sep or not user:
            problems.append("FLOWER_BASIC_AUTH must be user:password (comma-separated pairs)")
        elif (
            len(password) < FLOWER_MIN_PASSWORD
            or password.lower() == user.lower()
            or password.lower() in _COMMON_PASSWORDS
            or len(set(password)) < 6
        ):
            problems.append(
                f"FLOWER_BASIC_AUTH password for {user!r} is weak: at least "
                f"{FLOWER_MIN_PASSWORD} characters, 6 distinct, not the user name"
            )
    return problems


def normalized_email(email: str) -> str:
    return email.strip().lower()


@lru_cache
def get_settings() -> Settings:
    return Settings()
