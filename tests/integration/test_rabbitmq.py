"""RabbitMQ end to end on the machine's broker, in a private vhost per test module: quorum
queues with a delivery limit and a dead-letter exchange, Celery retries (countdown) through
native delayed delivery, queue depth read on AMQP."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest

from devstack import processes
from tests.conftest import ARTIFACTS

AMQP = "amqp://guest:guest@127.0.0.1:5672"


def _ctl(*args: str) -> str:
    out = subprocess.run(
        ["rabbitmqctl", "-q", *args], check=True, capture_output=True, text=True, timeout=60
    )
    return out.stdout


@pytest.fixture(scope="module")
def vhost() -> Iterator[str]:
    assert shutil.which("rabbitmqctl"), "RabbitMQ (rabbitmqctl) is part of this machine's stack"
    assert processes.port_open(5672), "the machine's RabbitMQ is not listening on :5672"
    name = f"oms-test-{uuid.uuid4().hex[:8]}"
    _ctl("add_vhost", name)
    _ctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    yield name
    _ctl("delete_vhost", name)


def _probe(broker: str, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "tests.support.broker_probe", *args],
        env={**os.environ, "BROKER_URL": broker, "BROKER_DELIVERY_LIMIT": "2"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=processes.ROOT,
    )
    return out.stdout.strip().splitlines()[-1]


def _queues(vhost: str) -> dict[str, dict]:
    rows = json.loads(
        _ctl(
            "list_queues",
            "-p",
            vhost,
            "name",
            "type",
            "arguments",
            "messages",
            "--formatter",
            "json",
        )
    )
    for r in rows:  # [[name, type, value], …] → {name: value}
        r["arguments"] = {a[0]: a[2] for a in r["arguments"]}
    return {r["name"]: r for r in rows}


def _wait(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_quorum_queues_retry_dead_letter_and_depth(services, vhost) -> None:
    from core.redis_client import get_redis

    broker = f"{AMQP}/{vhost}"
    # Nothing consumes `events` here: its depth is what we published.
    for _ in range(3):
        _probe(broker, "send", "tests.nothing", "events")
    assert json.loads(_probe(broker, "depths", "events", "no-such-queue")) == {
        "events": 3,
        "no-such-queue": 0,
    }

    # Worker.start pings over the test broker: start this one by hand, wait for its log.
    log_path = ARTIFACTS / f"worker-amqp-{vhost}.log"
    proc = processes.spawn(
        processes.celery_args("worker", concurrency=1, queues="maintenance")
        + ["-n", f"amqp-{uuid.uuid4().hex[:6]}@localhost", "-I", "tests.support.slow_tasks"],
        env={"BROKER_URL": broker, "BROKER_DELIVERY_LIMIT": "2"},
        log_path=log_path,
    )

    def worker_log() -> str:
        return log_path.read_text(errors="replace") if log_path.exists() else ""

    def declared() -> dict | None:
        queues = _queues(vhost)
        return queues if "maintenance.dead" in queues else None

    try:
        _wait(lambda: "ready." in worker_log(), 60, "the worker to be ready")
        queues = _wait(declared, 30, "the dead-letter queues")
        for name in ("events", "maintenance"):  # declared by the publish and the worker
            assert queues[name]["type"] == "quorum", queues[name]
            args = queues[name]["arguments"]
            assert args["x-dead-letter-exchange"] == "oms.dead"
            assert args["x-dead-letter-routing-key"] == f"{name}.dead"
        assert queues["maintenance"]["arguments"]["x-delivery-limit"] == 2
        assert queues["maintenance.dead"]["type"] == "quorum"

        # A countdown retry on a quorum queue (native delayed delivery over topic exchanges).
        key = f"oms-test:retry:{uuid.uuid4().hex}"
        _probe(broker, "send", "maintenance.test_retry_once", "maintenance", key)
        _wait(lambda: get_redis().get(key) == "done", 60, "the retried task to run again")

        # A message that kills its worker every time is dead-lettered after the limit,
        # not redelivered forever.
        _probe(broker, "send", "maintenance.test_die", "maintenance")
        _wait(lambda: _queues(vhost)["maintenance.dead"]["messages"] == 1, 90, "dead letter")
        assert _queues(vhost)["maintenance"]["messages"] == 0
    finally:
        processes.stop(proc, timeout=15)


def test_queue_depth_on_redis(paused_worker) -> None:
    from tasks.app import celery_app
    from tasks.dispatch import queue_depths

    before = queue_depths(["events"])["events"]
    for _ in range(2):
        celery_app.send_task("tests.nothing", queue="events")
    assert queue_depths(["events", "no-such-queue"]) == {"events": before + 2, "no-such-queue": 0}
