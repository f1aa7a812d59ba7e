"""A private, throw-away stack for one benchmark or chaos run, on free loopback ports.

SecantusDB (``:memory:`` unless a storage dir is asked for), a private ``redis-server`` (the
machine's Redis on :6379 is shared and chaos must be able to restart ours), localstripe from
scratch, N Celery workers, the API under uvicorn and, optionally, beat. The broker is the
private Redis, or a private vhost on the machine's RabbitMQ with ``--broker amqp://…``.

The environment of every child is written here (bench is a tool, not app code); the bench
process puts the same values into ``os.environ`` before it imports any app module, so its own
``get_settings()`` agrees with the children. Everything is stopped at exit, on SIGTERM/SIGINT
too, and every wait is bounded.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from devstack import processes

WEBHOOK_SECRET = "whsec_bench_local_only"
BENCH_INCLUDE = "bench.celery_tasks,bench.worker_hooks"


@dataclass
class StackConfig:
    workers: int = 1
    concurrency: int = 2
    # "single": ``workers`` processes each consuming every queue on prefork × concurrency;
    # "split": `make up`'s layout (devstack.processes.WORKER_LAYOUT, one worker per queue
    # group, payments on a threads pool); ``workers``/``concurrency`` are then ignored.
    layout: str = "single"
    broker: str | None = None  # amqp://… to use RabbitMQ; None: the private Redis
    beat: bool = False
    mongo_storage: str = ":memory:"  # or "dir" for a temp dir that survives a restart
    env: dict[str, str] = field(default_factory=dict)  # extra settings (thresholds)
    profile_dir: str | None = None  # switch on the bench-only worker profiler + op counters
    mongo_profile: str | None = None  # run SecantusDB under bench.mongo_profiled, summary here
    label: str = "bench"
    # Restart a worker that exits on its own, as compose's `restart: unless-stopped` and
    # `make up` do (a worker SIGKILLed on purpose is left to the scenario that killed it).
    supervise: bool = False


def base_env() -> dict[str, str]:
    """Settings every bench child gets: rate limits off, test profile, quiet logs."""
    return {
        "APP_ENV": "test",
        "LOG_LEVEL": "WARNING",
        "MONGODB_SERVER_SELECTION_MS": "2000",
        "RATE_LIMIT_DEFAULT": "",
        "RATE_LIMIT_LOGIN": "",
        "RATE_LIMIT_ORDERS": "",
        "MAX_UNPAID_ORDERS_PER_CUSTOMER": "0",
        "MAX_UNPAID_UNITS_PER_PRODUCT": "0",
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_TIMEOUT_SECONDS": "5",
        "STUCK_ORDER_SECONDS": "3600",
        "PAYMENT_WINDOW_SECONDS": "3600",
        "DELIVERY_DELAY_SECONDS": "3600",
        "ORPHAN_INTENT_GRACE_SECONDS": "10",
        "RETRY_BACKOFF_CAP": "2",
        "HEALTH_CHECK_TIMEOUT_MS": "800",
        "EVENT_HANDLER_MODULES": "",
        "OUTBOX_SWEEP_MIN_AGE": "2",
        "BEAT_RECONCILE_INTERVAL": "15",
        "BEAT_OUTBOX_INTERVAL": "5",
        "BEAT_HEALTH_INTERVAL": "60",
        "PYTHONUNBUFFERED": "1",
        # `make chaos CHAOS_ARGS="--capture manual"` runs the stacks with manual capture.
        "PAYMENT_CAPTURE": os.environ.get("PAYMENT_CAPTURE", "automatic"),
    }


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


class Stack:
    """Start with ``with Stack(cfg) as stack:``; children die with the context or a signal."""

    def __init__(self, cfg: StackConfig) -> None:
        self.cfg = cfg
        self.tmp = Path(tempfile.mkdtemp(prefix=f"oms-{cfg.label}-"))
        self.logs = self.tmp / "logs"
        self.logs.mkdir()
        self.mongo_port = processes.free_port()
        self.redis_port = processes.free_port()
        self.stripe_port = processes.free_port()
        self.api_port = processes.free_port()
        self.api_base = f"http://127.0.0.1:{self.api_port}"
        self.stripe_base = f"http://127.0.0.1:{self.stripe_port}"
        self.mongo_storage = (
            str(self.tmp / "mongo") if cfg.mongo_storage == "dir" else cfg.mongo_storage
        )
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.vhost: str | None = None
        broker = self.redis_url
        if cfg.broker:
            parts = urlsplit(cfg.broker)
            # A private vhost: the machine's RabbitMQ is shared, and our queue names are not.
            self.vhost = f"oms-{cfg.label}-{uuid.uuid4().hex[:8]}"
            broker = urlunsplit((parts.scheme, parts.netloc, "/" + self.vhost, "", ""))
        self.broker_url = broker
        self.mongo: subprocess.Popen | None = None
        self.redis: subprocess.Popen | None = None
        self.stripe: subprocess.Popen | None = None
        self.api: subprocess.Popen | None = None
        if cfg.layout == "split":
            self.worker_specs: list[processes.WorkerSpec] = list(processes.WORKER_LAYOUT)
        elif cfg.layout == "single":
            self.worker_specs = [
                processes.WorkerSpec(f"w{i + 1}", processes.ALL_QUEUES, "prefork", cfg.concurrency)
                for i in range(cfg.workers)
            ]
        else:
            raise ValueError(f"unknown worker layout {cfg.layout!r}")
        self.workers: list[subprocess.Popen | None] = [None] * len(self.worker_specs)
        self.worker_names = [
            f"{cfg.label}{i + 1}-{uuid.uuid4().hex[:6]}@{socket.gethostname()}"
            for i in range(len(self.worker_specs))
        ]
        self.beats: list[subprocess.Popen] = []
        self._stopped = False
        self._pgid_file = self.tmp / "pgids"
        self._pgids: set[int] = set()
        self._watchdog: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._old_handlers: dict[int, object] = {}
        self._down_on_purpose: set[int] = set()
        self.restarts: list[str] = []  # what the supervisor did, for the report
        self.env = {
            **base_env(),
            "MONGODB_URL": f"mongodb://127.0.0.1:{self.mongo_port}/oms_bench?retryWrites=false",
            "REDIS_URL": self.redis_url,
            "BROKER_URL": self.broker_url,
            "STRIPE_API_BASE": self.stripe_base,
            "PUBLIC_BASE_URL": self.api_base,
            "DATA_DIR": str(self.tmp),
            **cfg.env,
        }
        if cfg.profile_dir:
            self.env["BENCH_PROFILE_DIR"] = cfg.profile_dir
        # BENCH_LOG_LEVEL=INFO (with BENCH_KEEP_LOGS=1) keeps every child's log for a post-mortem.
        self.log_level = os.environ.get("BENCH_LOG_LEVEL", "WARNING").upper()
        self.env["LOG_LEVEL"] = self.log_level

    # -- lifecycle ----------------------------------------------------------------------
    def __enter__(self) -> Stack:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            self._old_handlers[sig] = signal.signal(sig, self._on_signal)
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]

    def _on_signal(self, signum: int, _frame: object) -> None:
        # A second signal (e.g. `timeout` signalling the whole group) must not cut the stop short.
        for sig in self._old_handlers:
            signal.signal(sig, signal.SIG_IGN)
        self.stop()
        raise SystemExit(128 + signum)

    def apply_env(self) -> None:
        """Make this process see the stack's settings (before any app module reads them)."""
        os.environ.update(self.env)

    def _track(self, proc: subprocess.Popen | None, *, add: bool = True) -> subprocess.Popen | None:
        """Keep the watchdog's list of our process groups (every child leads one) current."""
        if proc is not None:
            with self._lock:
                (self._pgids.add if add else self._pgids.discard)(proc.pid)
                self._pgid_file.write_text("\n".join(str(p) for p in sorted(self._pgids)))
        return proc

    def start(self) -> None:
        self.apply_env()
        self._pgid_file.write_text("")
        self._watchdog = subprocess.Popen(
            [sys.executable, "-m", "bench.watchdog", str(os.getpid()), str(self._pgid_file)],
            cwd=processes.ROOT,
            start_new_session=True,
        )
        if self.vhost:
            _rabbitmqctl("add_vhost", self.vhost)
            _rabbitmqctl("set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")
        errors: list[BaseException] = []

        def run(fn) -> None:
            try:
                fn()
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [
            threading.Thread(target=run, args=(f,))
            for f in (self.start_mongo, self.start_redis, self.start_stripe)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        if errors:
            raise RuntimeError(f"stack failed to start: {errors[0]!r}") from errors[0]
        # Collections and indexes first, from one process (see models/schema.py).
        subprocess.run(
            [sys.executable, "manage.py", "schema"],
            cwd=processes.ROOT,
            env={**os.environ, **self.env},
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.start_api()
        for i in range(len(self.workers)):
            self.start_worker(i, wait=False)
        self.wait_workers()
        processes.wait_port(self.api_port, 40, self.api)
        self.register_webhook()
        if self.cfg.beat:
            self.start_beat()
        if self.cfg.supervise:
            threading.Thread(target=self._supervise, daemon=True).start()

    def _supervise(self) -> None:
        """Restart workers that exited on their own (crashed), once a second."""
        started = time.monotonic()
        while not self._stopped:
            time.sleep(1.0)
            for i, proc in enumerate(list(self.workers)):
                if proc is None or proc.poll() is None or i in self._down_on_purpose:
                    continue
                if self._stopped:
                    return
                self.restarts.append(
                    f"worker {i + 1} exited by itself (code {proc.returncode}) at "
                    f"{time.monotonic() - started:.0f}s; restarted (see worker{i + 1}.log)"
                )
                self._track(proc, add=False)
                try:
                    self.start_worker(i, wait=False)
                except RuntimeError:  # the stack is stopping
                    return

    def stop(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        for proc in self.beats:
            processes.stop(proc, timeout=5)
        with self._lock:  # a fault thread may be restarting a worker right now
            workers = list(self.workers)
        for proc in workers:
            processes.stop(proc, timeout=10)
        for proc in (self.api, self.stripe, self.redis, self.mongo):
            if proc is not None:
                # A frozen emulator ignores SIGTERM until it is continued.
                try:
                    os.killpg(proc.pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
                processes.stop(proc, timeout=8)
        if self._watchdog is not None:
            self._watchdog.kill()
            self._watchdog.wait(5)
        if self.vhost:
            try:
                _rabbitmqctl("delete_vhost", self.vhost)
            except Exception:  # best effort at exit
                print(f"[bench] could not delete RabbitMQ vhost {self.vhost}")
        if not os.environ.get("BENCH_KEEP_LOGS"):
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- infrastructure -----------------------------------------------------------------
    def start_mongo(self) -> None:
        if self.cfg.mongo_profile:
            # The same server and arguments as processes.start_mongo, under a sampler.
            proc = processes.spawn(
                [
                    sys.executable,
                    "-m",
                    "bench.mongo_profiled",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.mongo_port),
                    "--storage-path",
                    self.mongo_storage,
                    "--log-level",
                    "WARNING",
                ],
                env={"BENCH_MONGO_PROFILE": self.cfg.mongo_profile},
                log_path=self.logs / "mongo.log",
            )
            processes.wait_port(self.mongo_port, 30, proc)
            self.mongo = self._track(proc)
            return
        self.mongo = self._track(
            processes.start_mongo(self.mongo_port, self.mongo_storage, self.logs / "mongo.log")
        )

    def start_redis(self) -> None:
        self.redis = self._track(processes.start_redis(self.redis_port, self.logs / "redis.log"))

    def start_stripe(self) -> None:
        self.stripe = self._track(
            processes.start_localstripe(self.stripe_port, None, self.logs / "localstripe.log")
        )

    def restart_redis(self, down_seconds: float = 1.0) -> None:
        """Stop our redis-server (it keeps nothing: queued messages are lost) and start it."""
        processes.stop(self.redis, timeout=5)
        self._track(self.redis, add=False)
        time.sleep(down_seconds)
        self.start_redis()

    def restart_mongo(self, down_seconds: float = 1.0) -> None:
        processes.stop(self.mongo, timeout=10)
        self._track(self.mongo, add=False)
        time.sleep(down_seconds)
        self.start_mongo()

    def freeze_stripe(self, seconds: float) -> None:
        assert self.stripe is not None
        os.killpg(self.stripe.pid, signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            os.killpg(self.stripe.pid, signal.SIGCONT)

    def register_webhook(self, url: str | None = None, hook_id: str = "oms") -> None:
        from devstack.stripe_emulator import register_webhook

        register_webhook(
            self.stripe_base,
            url or f"{self.api_base}/api/payments/webhook",
            WEBHOOK_SECRET,
            hook_id,
        )

    # -- our processes ------------------------------------------------------------------
    def start_api(self) -> None:
        self.api = self._track(
            processes.spawn(
                processes.api_args(self.api_port, "--no-access-log", "--log-level", "warning"),
                env=self.env,
                log_path=self.logs / "api.log",
            )
        )

    def start_worker(self, i: int, *, wait: bool = True) -> None:
        spec = self.worker_specs[i]
        args = processes.celery_args(
            "worker", concurrency=spec.concurrency, queues=spec.queues, pool=spec.pool
        )
        args = [a if a != "INFO" else self.log_level for a in args]
        args += ["-n", self.worker_names[i], "-I", BENCH_INCLUDE]
        with self._lock:
            if self._stopped:
                raise RuntimeError("the stack is stopping")
            # Appended to: a crashed run's traceback stays above the restart.
            proc = processes.spawn(args, env=self.env, log_path=self.logs / f"worker{i + 1}.log")
            self.workers[i] = proc
            self._down_on_purpose.discard(i)
            self._pgids.add(proc.pid)
            self._pgid_file.write_text("\n".join(str(p) for p in sorted(self._pgids)))
        if wait:
            self.wait_workers([self.worker_names[i]])

    def wait_workers(self, names: list[str] | None = None, timeout: float = 60) -> None:
        from tasks.dispatch import workers_ping

        names = names or self.worker_names
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, proc in enumerate(self.workers):
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError(f"worker {i + 1} exited: see {self.logs}/worker{i + 1}.log")
            try:
                if workers_ping(0.5, names, limit=len(names)) >= len(names):
                    return
            except Exception:  # the broker may not answer yet
                pass
            time.sleep(0.2)
        raise TimeoutError(f"workers {names} did not answer within {timeout}s")

    def kill_worker(self, i: int = 0) -> None:
        """SIGKILL the worker's whole group (parent and pool): a crash, not a stop."""
        proc = self.workers[i]
        if proc is not None:
            self._down_on_purpose.add(i)
            processes.kill_hard(proc)
            self._track(proc, add=False)

    def stop_worker_warm(self, i: int = 0, timeout: float = 30) -> None:
        """SIGTERM the worker parent only: a warm shutdown, so pool children run their
        shutdown hooks (the profiler writes its files then)."""
        proc = self.workers[i]
        if proc is None or proc.poll() is not None:
            return
        self._down_on_purpose.add(i)
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            processes.kill_hard(proc)

    def start_beat(self) -> subprocess.Popen:
        n = len(self.beats) + 1
        args = [a if a != "INFO" else self.log_level for a in processes.celery_args("beat")]
        args += ["--schedule", str(self.tmp / f"celerybeat-schedule-{n}")]
        with self._lock:
            if self._stopped:
                raise RuntimeError("the stack is stopping")
            proc = processes.spawn(args, env=self.env, log_path=self.logs / f"beat{n}.log")
            self.beats.append(proc)
        self._track(proc)
        return proc

    # -- observation --------------------------------------------------------------------
    def roles(self) -> Iterator[tuple[str, subprocess.Popen | None]]:
        yield "api", self.api
        for i, proc in enumerate(self.workers):
            yield f"worker{i + 1}", proc
        for i, proc in enumerate(self.beats):
            yield f"beat{i + 1}", proc
        yield "mongo", self.mongo
        yield "redis", self.redis
        yield "localstripe", self.stripe
