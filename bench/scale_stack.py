"""A scaled-out private stack on one machine: N API replicas behind HAProxy, the worker
layout of `make up` (one worker per queue group), a private RabbitMQ node, beat, localstripe.

RabbitMQ is a node of our own (Debian's ``rabbitmq-server`` with its own node name, ports
and data directory under the stack's temp dir), never the machine's service: other users
of the machine share that one, and a scenario restarts ours. HAProxy (Debian's ``haproxy``)
checks each replica's ``/ready``, so a replica draining after SIGTERM leaves the rotation.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

from bench.stack import Stack, StackConfig
from devstack import processes

HAPROXY_CFG = """\
global
  maxconn 4096
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  timeout tunnel 1h
  timeout check 5s
  retries 2
  option redispatch
frontend http
  bind 127.0.0.1:{port}
  default_backend api
backend api
  balance roundrobin
  option httpchk GET /ready
  http-check expect status 200
  default-server check inter 1s fall 3 rise 2
{servers}
"""


def require(binary: str, package: str) -> str:
    path = shutil.which(binary) or (
        f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists() else None
    )
    if not path:
        raise RuntimeError(
            f"{binary} not found: install the Debian package {package} (make scale does)"
        )
    return path


class PrivateRabbit:
    """One RabbitMQ node on free loopback ports with its data in ``base``."""

    def __init__(self, base: Path, log_path: Path) -> None:
        self.base = base
        self.log_path = log_path
        self.port = processes.free_port()
        self.dist_port = processes.free_port()
        self.node = f"oms-scale-{uuid.uuid4().hex[:6]}@localhost"
        self.proc: subprocess.Popen | None = None
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def start(self, timeout: float = 60) -> None:
        server = require("rabbitmq-server", "rabbitmq-server")
        for sub in ("mnesia", "log"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        (self.base / "enabled_plugins").write_text("[].\n")
        # Debian's script runs the node as the rabbitmq user: it must own its directory.
        subprocess.run(["chown", "-R", "rabbitmq:rabbitmq", str(self.base)], check=False)
        env = {
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_FEATURE_FLAGS_FILE": str(self.base / "feature_flags"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.base / "pid"),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq"),
        }
        self.proc = processes.spawn([server], env=env, log_path=self.log_path)
        processes.wait_port(self.port, timeout, self.proc)

    def stop(self) -> None:
        if self.proc is None:
            return
        subprocess.run(
            ["rabbitmqctl", "-q", "-n", self.node, "stop"],
            capture_output=True,
            timeout=60,
            check=False,
        )
        processes.stop(self.proc, timeout=20)
        self.proc = None


class ScaleStack(Stack):
    def __init__(
        self, cfg: StackConfig, apis: int = 2, rabbit: PrivateRabbit | None = None
    ) -> None:
        super().__init__(replace(cfg, mongo_storage="dir"))
        # A node passed in is shared by several stacks in one process (this process's Celery
        # app keeps the broker URL it was built with) and is left running at stop.
        self.own_rabbit = rabbit is None
        # Outside self.tmp: the node must stop before that directory goes.
        self.rabbit_dir = Path(tempfile.mkdtemp(prefix="oms-scale-rabbitmq-"))
        self.rabbit = rabbit or PrivateRabbit(self.rabbit_dir, self.logs / "rabbitmq.log")
        self.broker_url = self.rabbit.url
        self.api_ports = [self.api_port] + [processes.free_port() for _ in range(apis - 1)]
        self.apis: list[subprocess.Popen | None] = [None] * apis
        self.proxy_port = processes.free_port()
        self.proxy: subprocess.Popen | None = None
        self.api_base = f"http://127.0.0.1:{self.proxy_port}"
        self.env.update(
            BROKER_URL=self.broker_url,
            PUBLIC_BASE_URL=self.api_base,
            SHUTDOWN_DRAIN_SECONDS="2",
        )

    def start(self) -> None:
        if self.own_rabbit:
            self.rabbit.start()
            self._track(self.rabbit.proc)
        super().start()
        for port in self.api_ports:
            processes.wait_port(port, 40)
        self._wait_proxy_ready()

    def start_api(self) -> None:  # called by Stack.start: every replica, then the proxy
        for i in range(len(self.apis)):
            self.start_api_replica(i)
        self.api = self.apis[0]
        cfg = self.tmp / "haproxy.cfg"
        servers = "\n".join(
            f"  server api{i + 1} 127.0.0.1:{port}" for i, port in enumerate(self.api_ports)
        )
        cfg.write_text(HAPROXY_CFG.format(port=self.proxy_port, servers=servers))
        self.proxy = self._track(
            processes.spawn(
                [require("haproxy", "haproxy"), "-db", "-f", str(cfg)],
                log_path=self.logs / "haproxy.log",
            )
        )

    def _wait_proxy_ready(self, timeout: float = 40) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.api_base}/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise TimeoutError("HAProxy never had a ready API behind it")

    def start_api_replica(self, i: int) -> None:
        port = self.api_ports[i]
        self.apis[i] = self._track(
            processes.spawn(
                processes.api_args(
                    port,
                    "--no-access-log",
                    "--log-level",
                    "warning",
                    "--timeout-graceful-shutdown",
                    "5",
                ),
                env=self.env,
                log_path=self.logs / f"api{i + 1}.log",
            )
        )

    def sigterm_api(self, i: int, timeout: float = 30) -> float:
        """SIGTERM one replica (its drain, then uvicorn's stop); seconds until it exited."""
        proc = self.apis[i]
        assert proc is not None
        t0 = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
        self._track(proc, add=False)
        return time.monotonic() - t0

    def restart_rabbitmq(self, down_seconds: float = 2.0) -> None:
        """Stop our RabbitMQ node cleanly and start it again (quorum queues keep messages)."""
        self._track(self.rabbit.proc, add=False)
        self.rabbit.stop()
        time.sleep(down_seconds)
        self.rabbit.start()
        self._track(self.rabbit.proc)

    def stop(self) -> None:
        for proc in [*self.apis[1:], self.proxy]:
            processes.stop(proc, timeout=8)
        try:
            super().stop()
        finally:
            if self.own_rabbit:
                self.rabbit.stop()
            shutil.rmtree(self.rabbit_dir, ignore_errors=True)
