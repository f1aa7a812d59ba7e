"""Operations endpoints: /health (every dependency, each bounded), /ready, /metrics."""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from api.deps import ViewerIsAdmin, get_app_settings
from api.envelope import failure
from api.ratelimit import ip_key, rate_limit
from core.db import ping_mongo
from core.redis_client import ping_redis
from core.settings import get_settings
from gateways.stripe_gateway import get_gateway
from monitoring.metrics import HEALTH_CHECK_OK, render_latest
from tasks.dispatch import broker_ping, workers_ping

router = APIRouter(tags=["operations"])
# Checks run side by side; a hung dependency costs at most its own timeout.
_pool = ThreadPoolExecutor(max_workers=10, thread_name_prefix="health")
_cache_lock = threading.Lock()


def _workers(timeout_s: float) -> None:
    if workers_ping(timeout_s * 0.9, limit=1) < 1:
        raise RuntimeError("no worker answered a ping")


def _checks(timeout_s: float) -> dict[str, Callable[[], None]]:
    timeout_ms = int(timeout_s * 1000)
    return {
        "mongo": lambda: ping_mongo(timeout_ms),
        "redis": lambda: ping_redis(timeout_s),
        "broker": lambda: broker_ping(timeout_s),
        "workers": lambda: _workers(timeout_s),
        "stripe": lambda: get_gateway().ping(timeout_s),
    }


def _timed(fn: Callable[[], None]) -> tuple[bool, float, str | None]:
    start = time.perf_counter()
    try:
        fn()
        return True, (time.perf_counter() - start) * 1000, None
    except Exception as exc:  # each check reports its own failure
        return False, (time.perf_counter() - start) * 1000, f"{type(exc).__name__}: {exc}"[:200]


def run_checks(names: tuple[str, ...] | None = None) -> dict[str, dict]:
    timeout_s = get_settings().health_check_timeout_ms / 1000
    checks = _checks(timeout_s)
    selected = {k: v for k, v in checks.items() if names is None or k in names}
    futures = {name: _pool.submit(_timed, fn) for name, fn in selected.items()}
    results: dict[str, dict] = {}
    deadline = time.perf_counter() + timeout_s + 0.1
    for name, future in futures.items():
        try:
            ok, ms, error = future.result(timeout=max(0.01, deadline - time.perf_counter()))
        except FutureTimeout:
            ok, ms, error = False, timeout_s * 1000, "timed out"
        results[name] = {"status": "ok" if ok else "fail", "latencyMs": round(ms, 1)}
        if error:
            results[name]["error"] = error
        HEALTH_CHECK_OK.labels(name).set(1 if ok else 0)
    return results


def _anonymous_view(checks: dict[str, dict]) -> dict[str, dict]:
    """Status per dependency only: error text (hosts, masked keys) and latency are for admins."""
    return {name: {"status": check["status"]} for name, check in checks.items()}


def _cached_checks(request: Request) -> dict[str, dict]:
    """All checks, reused for HEALTH_CACHE_SECONDS: each run pings every worker and Stripe."""
    ttl = get_app_settings(request).health_cache_seconds
    state = request.app.state
    cached = getattr(state, "health_cache", None)
    now = time.monotonic()
    if cached is not None and ttl > 0 and now - cached[0] < ttl:
        return cached[1]
    with _cache_lock:
        cached = getattr(state, "health_cache", None)
        now = time.monotonic()
        if cached is not None and ttl > 0 and now - cached[0] < ttl:
            return cached[1]
        checks = run_checks()
        state.health_cache = (time.monotonic(), checks)
        return checks


@router.get(
    "/health",
    summary="Every dependency's status (admins: with latency and error detail)",
    dependencies=[Depends(rate_limit("rate_limit_health", ip_key))],
)
def health(request: Request, is_admin: ViewerIsAdmin) -> JSONResponse:
    checks = _cached_checks(request)
    failing = sorted(name for name, c in checks.items() if c["status"] != "ok")
    body: dict = {
        "status": "ok" if not failing else "fail",
        "checks": checks if is_admin else _anonymous_view(checks),
    }
    if failing:
        body["failing"] = failing
        body["message"] = "unavailable: " + ", ".join(failing)
    return JSONResponse(body, status_code=503 if failing else 200)


@router.get("/live", summary="Liveness: the process answers (touches no dependency)")
def live() -> JSONResponse:
    return JSONResponse({"live": True})


@router.get("/ready", summary="Readiness for load balancers (mongo, redis and broker answer)")
def ready(request: Request) -> JSONResponse:
    if getattr(request.app.state, "draining", False):  # SIGTERM: api/lifecycle.py
        return JSONResponse({"ready": False, "failing": ["draining"]}, status_code=503)
    checks = run_checks(("mongo", "redis", "broker"))
    failing = sorted(name for name, c in checks.items() if c["status"] != "ok")
    if failing:
        return JSONResponse({"ready": False, "failing": failing}, status_code=503)
    return JSONResponse({"ready": True})


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    settings = get_settings()
    # A configured token is always required; "public" only means no token is set (dev).
    if settings.metrics_token or not settings.metrics_public:
        auth = request.headers.get("authorization", "")
        expected = f"Bearer {settings.metrics_token}"
        if not settings.metrics_token or not hmac.compare_digest(
            auth.encode("utf-8", "surrogateescape"), expected.encode()
        ):
            return failure(401, "UNAUTHORIZED", "metrics need a bearer token")
    payload, content_type = render_latest()
    return Response(payload, media_type=content_type)
