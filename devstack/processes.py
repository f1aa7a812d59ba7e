"""Start and stop the embedded servers and our own processes (used by `make up` and tests)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.3):
            return True
    except OSError:
        return False


def wait_port(port: int, timeout: float = 20.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port):
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(
                f"process {proc.args!r} exited with {proc.returncode} before :{port}"
            )
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def spawn(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
    cwd: Path = ROOT,
) -> subprocess.Popen:
    """Start a child in its own process group so a stop reaches its children too."""
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    full_env = {**os.environ, **(env or {})}
    return subprocess.Popen(
        list(args),
        env=full_env,
        cwd=cwd,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen | None, timeout: float = 8.0, sig: int = signal.SIGTERM) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=5)


def kill_hard(proc: subprocess.Popen) -> None:
    """SIGKILL the whole group (worker parent and pool children) — a crash, not a stop."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


def start_mongo(port: int, storage: str, log_path: Path | None = None) -> subprocess.Popen:
    """SecantusDB (MongoDB wire protocol). storage ':memory:' for tests."""
    proc = spawn(
        [
            str(VENV_BIN / "secantusd-py"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--storage-path",
            storage,
            "--log-level",
            "WARNING",
        ],
        log_path=log_path,
    )
    wait_port(port, 30, proc)
    return proc


def start_localstripe(
    port: int, store: str | None = None, log_path: Path | None = None
) -> subprocess.Popen:
    args = [sys.executable, "-m", "devstack.localstripe_launcher", "--port", str(port)]
    args += ["--store", store] if store else ["--from-scratch"]
    proc = spawn(args, log_path=log_path)
    wait_port(port, 20, proc)
    return proc


def start_redis(port: int, log_path: Path | None = None) -> subprocess.Popen:
    binary = shutil.which("redis-server")
    if not binary:
        raise RuntimeError("redis-server not found on PATH")
    proc = spawn(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        log_path=log_path,
    )
    wait_port(port, 10, proc)
    return proc


@dataclass(frozen=True)
class WorkerSpec:
    """One worker process of the default layout: the queues it consumes and its pool."""

    name: str
    queues: str
    pool: str
    concurrency: int


# The default layout (`make up`, compose, deploy/kubernetes, the scale stack): one worker per
# queue group, so a slow Stripe never starves shipping or event dispatch. Payments wait on
# Stripe for most of a task's time, so they run on a threads pool (cheap waits, no
# monkey-patching, every client thread-safe: see tasks/pools.py); the rest stays on prefork.
WORKER_LAYOUT: tuple[WorkerSpec, ...] = (
    WorkerSpec("orders", "orders", "prefork", 2),
    WorkerSpec("payments", "payments", "threads", 16),
    WorkerSpec("events", "events,maintenance", "prefork", 2),
    # Outgoing webhooks and email wait on other people's servers: threads, apart from all.
    WorkerSpec("outbound", "webhooks", "threads", 8),
)
ALL_QUEUES = "orders,payments,events,maintenance,webhooks"


def api_args(port: int, *extra: str, host: str = "127.0.0.1") -> list[str]:
    """The API under uvicorn (the factory), as `make up`, the bench stacks and tests run it."""
    return [
        str(VENV_BIN / "uvicorn"),
        "api.main:create_app",
        "--factory",
        "--host",
        host,
        "--port",
        str(port),
        *extra,
    ]


def celery_args(
    kind: str, *, concurrency: int = 2, queues: str | None = None, pool: str = "prefork"
) -> list[str]:
    base = [str(VENV_BIN / "celery"), "-A", "tasks.app"]
    if kind == "worker":
        q = queues or ALL_QUEUES
        return base + [
            "worker",
            "-Q",
            q,
            "-c",
            str(concurrency),
            "-P",
            pool,
            "--without-mingle",
            "--without-gossip",
            "-E",
            "--loglevel",
            "INFO",
        ]
    if kind == "beat":
        return base + ["beat", "--loglevel", "INFO"]
    raise ValueError(kind)


def wait_worker_ready(check, timeout: float = 30.0) -> None:
    """Poll `check()` (a worker ping returning a count) until a worker answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check() > 0:
                return
        except Exception:  # noqa: S110 - the broker may not accept connections yet
            pass
        time.sleep(0.2)
    raise TimeoutError("no Celery worker answered within timeout")
