"""FastAPI application factory."""

from __future__ import annotations

import asyncio
import os
import socket
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from api.deps import install_security
from api.errors import install_error_handlers
from api.lifecycle import install_sigterm_drain
from api.middleware import (
    BodySizeLimitMiddleware,
    CorrelationMiddleware,
    RequestTimeoutMiddleware,
    SecurityHeadersMiddleware,
)
from api.openapi_docs import install_openapi
from api.ratelimit import install_rate_limits
from api.routes import (
    account,
    api_keys,
    events,
    health,
    mail_sink,
    notifications,
    orders,
    payments,
    products,
    realtime,
    returns,
    users,
    webhook_subscriptions,
)
from api.routes.realtime import close_event_hub
from core.db import connect_mongo
from core.settings import Settings, get_settings
from gateways.stripe_gateway import csp_sources
from models.event import announce
from monitoring.event_metrics import install_event_metrics
from monitoring.logging import configure_logging, get_logger
from monitoring.tracing import instrument_app, setup_tracing
from workflows.events import EventType

STATIC_DIR = Path(__file__).parent / "static"
API_SOURCE = f"api:{socket.gethostname()}:{os.getpid()}"
log = get_logger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI):
    configure_logging()
    connect_mongo()
    await asyncio.to_thread(announce, EventType.SYSTEM_STARTUP, API_SOURCE, {"component": "api"})
    install_sigterm_drain(app, get_settings().shutdown_drain_seconds)
    log.info("api_started")
    yield
    await close_event_hub(app)
    await asyncio.to_thread(announce, EventType.SYSTEM_SHUTDOWN, API_SOURCE, {"component": "api"})
    log.info("api_stopped")


def create_app(settings: Settings | None = None) -> FastAPI:
    # Tests pass a modified copy (rate limits, a private Redis); the app keeps it on state.
    settings = settings or get_settings()
    configure_logging()
    setup_tracing("api")  # off unless OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_SPANS_FILE is set
    app = FastAPI(
        title="Order Management Service",
        version="1.0.0",
        description="Orders, stock holds, Stripe payments and shipping, run as Celery chains.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(health.router)
    install_security(app, settings)
    app.include_router(users.router)
    app.include_router(account.router)
    app.include_router(products.router)
    app.include_router(orders.router)
    app.include_router(returns.router)
    app.include_router(returns.admin_router)
    app.include_router(payments.router)
    app.include_router(events.router)
    app.include_router(notifications.router)
    app.include_router(webhook_subscriptions.router)
    app.include_router(mail_sink.router)
    app.include_router(api_keys.router)
    app.include_router(realtime.router)
    install_event_metrics()
    # The schema documents every operation's errors (api/openapi_docs.py).
    install_openapi(app)

    app.mount("/static/swagger", StaticFiles(directory=swagger_ui_path), name="swagger")

    @app.get("/api-docs", include_in_schema=False)
    def api_docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="Order Management Service — API",
            swagger_js_url="/static/swagger/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger/swagger-ui.css",
            swagger_favicon_url="/static/swagger/favicon-32x32.png",
        )

    if STATIC_DIR.is_dir() and (STATIC_DIR / "index.html").exists():
        # Low priority: API routes (also ones added later) always win over the dashboard.
        app.frontend("/", directory=STATIC_DIR, fallback=None)

    # Innermost: its 429s still pass through CORS, security headers and correlation.
    install_rate_limits(app, settings)
    app.add_middleware(RequestTimeoutMiddleware, seconds=settings.request_timeout_seconds)
    # Outermost last: correlation wraps everything so even 413s carry the header.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=[o.strip() for o in settings.cors_origins.split(",") if o.strip()],
        allow_credentials=False,
        allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Correlation-ID"],
        expose_headers=["X-Correlation-ID", "Location", "Retry-After"],
    )
    app.add_middleware(
        SecurityHeadersMiddleware,
        stripe_sources=csp_sources(settings.stripe_api_base),
        page_origin=settings.public_base_url,
        hsts_seconds=settings.hsts_seconds,
    )
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(CorrelationMiddleware)
    instrument_app(app)  # the HTTP server span wraps every middleware above
    if settings.trusted_proxies.strip():
        # Outermost: every layer (rate limits, logs) sees the real client behind the proxy.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    return app
