"""Session fixtures: real SecantusDB, real localstripe, real Redis, real Celery workers.

Ports are chosen and the test settings profile is written into the environment before
any app module reads its settings, so the app, the tests and every worker subprocess see
the same services.
"""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_lib

from devstack import processes

ARTIFACTS = Path(tempfile.mkdtemp(prefix="oms-test-logs-"))
MONGO_PORT = processes.free_port()
STRIPE_PORT = processes.free_port()
SMTP_PORT = processes.free_port()
_private_redis: object | None = None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pick_redis() -> tuple[str, int]:
    """Use the machine's Redis if it answers (one free db, locked), else start our own."""
    global _private_redis
    base = "redis://127.0.0.1:6379"
    try:
        probe = redis_lib.Redis.from_url(base, socket_connect_timeout=0.5)
        probe.ping()
    except redis_lib.RedisError:
        port = processes.free_port()
        _private_redis = processes.start_redis(port, ARTIFACTS / "redis.log")
        return f"redis://127.0.0.1:{port}", 1
    # Several runs may share the machine's Redis: each takes a db of its own.
    for db in range(1, 16):
        client = redis_lib.Redis.from_url(f"{base}/{db}")
        holder = client.get("oms-test-lock")
        if holder is not None and not _alive(int(holder)):
            client.delete("oms-test-lock")  # a killed run left its lock behind
        if client.set("oms-test-lock", os.getpid(), nx=True, ex=3600):
            for key in client.scan_iter("*"):
                if key != b"oms-test-lock":
                    client.delete(key)
            return base, db
    raise RuntimeError("every Redis db 1..15 is locked by another test run")


REDIS_BASE, REDIS_DB = _pick_redis()

TEST_ENV = {
    "APP_ENV": "test",
    "LOG_LEVEL": "INFO",
    "MONGODB_URL": f"mongodb://127.0.0.1:{MONGO_PORT}/oms_test?retryWrites=false",
    "MONGODB_SERVER_SELECTION_MS": "1500",
    "REDIS_URL": f"{REDIS_BASE}/{REDIS_DB}",
    "BROKER_URL": "",
    "STRIPE_API_BASE": f"http://127.0.0.1:{STRIPE_PORT}",
    "PUBLIC_BASE_URL": "http://127.0.0.1:8000",
    "RATE_LIMIT_DEFAULT": "",
    "RATE_LIMIT_LOGIN": "",
    "RATE_LIMIT_ORDERS": "",
    "RATE_LIMIT_HEALTH": "",
    "RATE_LIMIT_LOGIN_CLIENT": "",
    "RATE_LIMIT_REGISTER": "",
    "LOGIN_LOCKOUT_THRESHOLD": "0",
    "MAX_UNPAID_ORDERS_PER_CUSTOMER": "0",
    "MAX_UNPAID_UNITS_PER_PRODUCT": "0",
    "STUCK_ORDER_SECONDS": "3600",
    "PAYMENT_WINDOW_SECONDS": "3600",
    "DELIVERY_DELAY_SECONDS": "0",
    "RETRY_BACKOFF_CAP": "2",
    "STRIPE_TIMEOUT_SECONDS": "2",
    "ORPHAN_INTENT_GRACE_SECONDS": "0",
    "HEALTH_CHECK_TIMEOUT_MS": "800",
    "DATA_DIR": str(ARTIFACTS),
    # Test-only event handlers (tests/support), driven by flags in Redis.
    "EVENT_HANDLER_MODULES": "tests.support.event_handlers",
    "OUTBOX_SWEEP_MIN_AGE": "1",
    # A real SMTP sink (devstack.mail_sink), started with the other services.
    "SMTP_HOST": "127.0.0.1",
    "SMTP_PORT": str(SMTP_PORT),
    "MAIL_SINK_DIR": str(ARTIFACTS / "mail"),
    # Outgoing webhooks retried in seconds, disabled after a short run (tests/e2e).
    "WEBHOOK_RETRY_BASE_SECONDS": "0.5",
    "WEBHOOK_RETRY_MAX_SECONDS": "2",
    "WEBHOOK_DISABLE_AFTER": "5",
    "WEBHOOK_DISABLE_AFTER_SECONDS": "35",  # longer than the 30 s outage the e2e test makes
    "WEBHOOK_MAX_ATTEMPTS": "100",
    "WEBHOOK_TIMEOUT_SECONDS": "2",
    # Pub/sub is server-wide: runs sharing the machine's Redis must not hear each other.
    "EVENTS_CHANNEL": f"oms:events:db{REDIS_DB}",
}
os.environ.update(TEST_ENV)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fuzz-examples",
        type=int,
        default=None,
        help="examples per operation for the schema fuzz test (make fuzz)",
    )


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    return ARTIFACTS


@pytest.fixture(scope="session")
def mongo_server() -> Iterator[dict]:
    # On disk (a temp dir), so a test that restarts the server keeps data and indexes.
    storage = ARTIFACTS / "mongo-data"
    storage.mkdir(exist_ok=True)
    proc = processes.start_mongo(MONGO_PORT, str(storage), ARTIFACTS / "mongo.log")
    info = {"port": MONGO_PORT, "proc": proc, "url": TEST_ENV["MONGODB_URL"], "storage": storage}
    yield info
    processes.stop(info["proc"])


@pytest.fixture(scope="session")
def stripe_server() -> Iterator[dict]:
    proc = processes.start_localstripe(STRIPE_PORT, None, ARTIFACTS / "localstripe.log")
    info = {"port": STRIPE_PORT, "proc": proc, "url": TEST_ENV["STRIPE_API_BASE"]}
    yield info
    processes.stop(info["proc"])


@pytest.fixture(scope="session")
def mail_sink() -> Iterator[dict]:
    proc = processes.spawn(
        [
            sys.executable,
            "-m",
            "devstack.mail_sink",
            "--port",
            str(SMTP_PORT),
            "--dir",
            TEST_ENV["MAIL_SINK_DIR"],
        ],
        log_path=ARTIFACTS / "mail-sink.log",
    )
    processes.wait_port(SMTP_PORT, 15, proc)
    yield {"port": SMTP_PORT, "dir": Path(TEST_ENV["MAIL_SINK_DIR"])}
    processes.stop(proc)


@pytest.fixture(scope="session")
def services(mongo_server: dict, stripe_server: dict, mail_sink: dict) -> Iterator[dict]:
    from core.db import connect_mongo
    from models.schema import ensure_schema

    connect_mongo()
    ensure_schema()  # before any worker or API starts (see models/schema.py)
    yield {"mongo": mongo_server, "stripe": stripe_server, "mail": mail_sink}
    client = redis_lib.Redis.from_url(TEST_ENV["REDIS_URL"])
    client.delete("oms-test-lock")
    if _private_redis is not None:
        processes.stop(_private_redis)  # type: ignore[arg-type]


@pytest.fixture
def clean_data(services: dict) -> Iterator[None]:
    """Each test starts with empty collections and no app keys in Redis."""
    from core.db import get_db
    from core.redis_client import get_redis

    db = get_db()
    for name in db.list_collection_names():
        db[name].delete_many({})
    r = get_redis()
    for key in r.scan_iter("oms:*"):
        r.delete(key)
    yield


@pytest.fixture
def app(clean_data: None):
    from api.main import create_app

    return create_app()


@pytest.fixture
def client(app) -> Iterator:
    from fastapi.testclient import TestClient

    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


class Worker:
    """A real `celery worker` subprocess on the test broker."""

    def __init__(
        self,
        log_name: str,
        concurrency: int = 2,
        *,
        queues: str | None = None,
        pool: str = "prefork",
        env: dict[str, str] | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.log_path = ARTIFACTS / f"{log_name}.log"
        self.concurrency = concurrency
        self.queues, self.pool, self.env = queues, pool, env
        self.extra_args = extra_args or []
        self.proc = None

    def start(self) -> Worker:
        import socket

        from tasks.dispatch import workers_ping

        self.name = f"test-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
        args = processes.celery_args(
            "worker", concurrency=self.concurrency, queues=self.queues, pool=self.pool
        )
        self.proc = processes.spawn(
            args + ["-n", self.name, *self.extra_args], env=self.env, log_path=self.log_path
        )
        processes.wait_worker_ready(lambda: workers_ping(0.5, [self.name]), timeout=40)
        return self

    def stop(self) -> None:
        processes.stop(self.proc, timeout=15)

    def kill(self) -> None:
        processes.kill_hard(self.proc)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture(scope="session")
def session_worker(services: dict) -> Iterator[Worker]:
    worker = Worker("worker-session").start()
    yield worker
    worker.stop()


@pytest.fixture
def worker(session_worker: Worker, clean_data: None) -> Worker:
    """The shared worker, with clean data for this test."""
    return session_worker


@pytest.fixture(scope="session")
def live_api(services: dict) -> Iterator[str]:
    """The API under uvicorn on a free port, with the emulator's webhook pointed at it."""
    from core.settings import get_settings
    from devstack.stripe_emulator import register_webhook

    port = processes.free_port()
    proc = processes.spawn(
        processes.api_args(port, "--no-access-log"),
        env={"PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"},
        log_path=ARTIFACTS / "live-api.log",
    )
    processes.wait_port(port, 30, proc)
    base = f"http://127.0.0.1:{port}"
    settings = get_settings()
    register_webhook(
        settings.stripe_api_base, f"{base}/api/payments/webhook", settings.stripe_webhook_secret
    )
    yield base
    processes.stop(proc)


@pytest.fixture
def paused_worker(worker: Worker) -> Iterator[Worker]:
    """The shared worker with its consumers cancelled: queued tasks wait until the test
    resumes it (or the fixture purges what is left and resumes it at teardown)."""
    from tasks.app import QUEUES, celery_app

    def pause() -> None:
        for queue in QUEUES:
            celery_app.control.cancel_consumer(queue, destination=[worker.name], reply=True)

    def resume() -> None:
        for queue in QUEUES:
            celery_app.control.add_consumer(queue, destination=[worker.name], reply=True)

    pause()
    worker.pause, worker.resume = pause, resume  # type: ignore[attr-defined]
    worker.purge = celery_app.control.purge  # type: ignore[attr-defined]
    yield worker
    celery_app.control.purge()
    resume()
