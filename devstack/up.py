"""`make up`: run the whole stack in the foreground under one supervisor; Ctrl-C stops all.

SecantusDB (unless MONGODB_URL is set), Redis (the configured one if it answers, else a
private redis-server), localstripe (unless STRIPE_API_BASE is set), then the seed, one
Celery worker per queue group (`processes.WORKER_LAYOUT`: payments on a threads pool), one
beat, Flower and the API.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import redis

from core.redis_client import make_redis
from core.settings import get_settings
from devstack import processes
from devstack.stripe_emulator import register_webhook

# A Celery worker can die on a broker hiccup (kombu's Redis transport crashes on some
# connection losses); like compose's `restart: unless-stopped`, the supervisor starts it
# again. Infrastructure and the API stop the stack instead: that needs a person.
RESTARTABLE = frozenset({"worker", "beat", "flower"})
RESTART_LIMIT = 5
RESTART_WINDOW_S = 300


class Supervisor:
    def __init__(self) -> None:
        self.settings = get_settings()
        self.data = Path(self.settings.data_dir).resolve()
        self.logs = self.data / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env: dict[str, str] = {}
        self.children: list[tuple[str, subprocess.Popen]] = []
        self.args: dict[str, list[str]] = {}
        self.restarted: dict[str, list[float]] = {}
        self.stopping = False

    def say(self, text: str) -> None:
        print(f"[make up] {text}", flush=True)

    def add(self, name: str, proc: subprocess.Popen) -> None:
        self.children.append((name, proc))
        self.say(f"{name} started (pid {proc.pid}, log {self.logs / (name + '.log')})")

    def run(self, name: str, args: list[str]) -> subprocess.Popen:
        proc = processes.spawn(args, env=self.env, log_path=self.logs / f"{name}.log")
        self.add(name, proc)
        self.args[name] = args
        return proc

    def restart(self, index: int) -> bool:
        """Start a crashed worker, beat or Flower again (as compose's `restart:` would);
        False once it crashed RESTART_LIMIT times within RESTART_WINDOW_S."""
        name, proc = self.children[index]
        now = time.monotonic()
        recent = [t for t in self.restarted.get(name, []) if now - t < RESTART_WINDOW_S]
        if name.split("-", 1)[0] not in RESTARTABLE or len(recent) >= RESTART_LIMIT:
            return False
        self.restarted[name] = [*recent, now]
        self.say(
            f"{name} exited with {proc.returncode}; restarting it "
            f"({len(recent) + 1}/{RESTART_LIMIT} within {RESTART_WINDOW_S}s, "
            f"log {self.logs / (name + '.log')})"
        )
        new = processes.spawn(self.args[name], env=self.env, log_path=self.logs / f"{name}.log")
        self.children[index] = (name, new)
        return True

    # -- infrastructure ---------------------------------------------------------------
    def start_mongo(self) -> None:
        if "mongodb_url" in self.settings.model_fields_set:
            self.say(f"using MONGODB_URL={self.settings.mongodb_url}")
            return
        port = urlsplit(self.settings.mongodb_url).port or 27017
        if processes.port_open(port):
            self.say(f"something already listens on :{port}; using it as MongoDB")
            return
        storage = self.data / "mongo"
        storage.mkdir(parents=True, exist_ok=True)
        proc = processes.start_mongo(port, str(storage), self.logs / "secantusdb.log")
        self.add("secantusdb", proc)

    def start_redis(self) -> None:
        try:
            make_redis(self.settings.redis_url, socket_connect_timeout=1).ping()
            self.say(f"using Redis at {self.settings.redis_url}")
            return
        except redis.RedisError:
            pass
        port = 6390
        proc = processes.start_redis(port, self.logs / "redis.log")
        self.add("redis", proc)
        url = f"redis://127.0.0.1:{port}/0"
        self.env["REDIS_URL"] = url
        if not self.settings.broker_url:
            self.env["BROKER_URL"] = url

    def start_stripe(self) -> None:
        if "stripe_api_base" in self.settings.model_fields_set:
            self.say(f"using STRIPE_API_BASE={self.settings.stripe_api_base}")
            return
        port = urlsplit(self.settings.stripe_api_base).port or 8420
        store = str(self.data / "localstripe.pickle")
        proc = processes.start_localstripe(port, store, self.logs / "localstripe.log")
        self.add("localstripe", proc)

    def start_mail_sink(self) -> None:
        """A local SMTP sink on :1025 unless SMTP_HOST names a real server; the admin
        dashboard lists what it caught (MAIL_SINK_DIR)."""
        if self.settings.smtp_host:
            self.say(f"sending mail through {self.settings.smtp_host}:{self.settings.smtp_port}")
            return
        port = self.settings.smtp_port
        folder = self.data / "mail"
        proc = processes.spawn(
            [sys.executable, "-m", "devstack.mail_sink", "--port", str(port), "--dir", str(folder)],
            log_path=self.logs / "mail-sink.log",
        )
        processes.wait_port(port, 15, proc)
        self.add("mail-sink", proc)
        self.env.update(
            {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port), "MAIL_SINK_DIR": str(folder)}
        )

    # -- our processes ----------------------------------------------------------------
    def start_app(self) -> None:
        py = sys.executable
        # One directory of metric samples shared by the API and the worker processes.
        prom = self.data / "prometheus"
        shutil.rmtree(prom, ignore_errors=True)
        prom.mkdir(parents=True)
        self.env["PROMETHEUS_MULTIPROC_DIR"] = str(prom)
        seed = subprocess.run(
            [py, "manage.py", "seed"],
            env={**os.environ, **self.env},
            cwd=processes.ROOT,
            check=False,
        )
        if seed.returncode != 0:
            raise RuntimeError("seeding failed (see output above)")
        for spec in processes.WORKER_LAYOUT:
            self.run(
                f"worker-{spec.name}",
                processes.celery_args(
                    "worker", concurrency=spec.concurrency, queues=spec.queues, pool=spec.pool
                )
                + ["-n", f"{spec.name}@%h"],
            )
        self.run(
            "beat",
            processes.celery_args("beat") + ["--schedule", str(self.data / "celerybeat-schedule")],
        )
        self.run(
            "flower",
            [
                str(processes.VENV_BIN / "celery"),
                "-A",
                "tasks.app",
                "flower",
                f"--port={self.settings.flower_port}",
                "--address=127.0.0.1",
                f"--basic-auth={self.settings.flower_basic_auth}",
                "--conf=monitoring/flowerconfig.py",
            ],
        )
        api = self.run(
            "api",
            processes.api_args(
                self.settings.api_port,
                "--no-access-log",
                f"--forwarded-allow-ips={self.settings.trusted_proxies}",
                host=self.settings.api_host,
            ),
        )
        processes.wait_port(self.settings.api_port, 30, api)
        processes.wait_port(self.settings.flower_port, 30)

    def register_webhook(self) -> None:
        if "api.stripe.com" in self.settings.stripe_api_base:
            return
        url = f"{self.settings.public_base_url}/api/payments/webhook"
        register_webhook(self.settings.stripe_api_base, url, self.settings.stripe_webhook_secret)
        self.say(f"registered the emulator's webhook -> {url}")

    def banner(self) -> None:
        s = self.settings
        base = s.public_base_url
        flower_user = s.flower_basic_auth.split(":")[0]
        print(
            "\n"
            "  Order Management Service is up\n"
            f"  API + dashboard  {base}/\n"
            f"  Swagger UI       {base}/api-docs\n"
            f"  Health           {base}/health\n"
            f"  Metrics          {base}/metrics\n"
            f"  Flower           http://127.0.0.1:{s.flower_port}/  (user {flower_user})\n"
            f"  Emails           {self.env.get('MAIL_SINK_DIR') or s.smtp_host}"
            " (the admin dashboard lists the sink's)\n"
            f"  Admin login      {s.admin_email}\n"
            f"  Logs             {self.logs}/\n"
            "  Ctrl-C stops everything.\n",
            flush=True,
        )

    def stop_all(self, *_: object) -> None:
        if self.stopping:
            return
        self.stopping = True
        self.say("stopping…")
        for name, proc in reversed(self.children):
            processes.stop(proc, timeout=10)
            self.say(f"{name} stopped")

    def watch(self) -> int:
        parent = os.getppid()
        while not self.stopping:
            if os.getppid() != parent:
                # `make` was killed (not Ctrl-C): do not leave the stack orphaned.
                self.say("parent process went away")
                self.stop_all()
                return 1
            for index, (name, proc) in enumerate(list(self.children)):
                if proc.poll() is not None and not self.stopping and not self.restart(index):
                    self.say(f"{name} exited with {proc.returncode}; stopping the stack")
                    self.stop_all()
                    return 1
            time.sleep(0.5)
        return 0

    def main(self) -> int:
        signal.signal(signal.SIGINT, lambda *_: self.stop_all())
        signal.signal(signal.SIGTERM, lambda *_: self.stop_all())
        started = time.monotonic()
        try:
            self.start_mongo()
            self.start_redis()
            self.start_stripe()
            self.start_mail_sink()
            self.start_app()
            self.register_webhook()
        except Exception as exc:
            self.say(f"failed to start: {exc}")
            self.stop_all()
            return 1
        self.say(f"stack ready in {time.monotonic() - started:.1f}s")
        self.banner()
        return self.watch()


if __name__ == "__main__":
    sys.exit(Supervisor().main())
