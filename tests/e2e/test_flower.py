"""Flower with basic auth, fed by the worker's task events, finds an order's tasks by id."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from devstack import processes
from tests.conftest import ARTIFACTS
from tests.factories import admin_login, create_product, place_order, register, saved_card


@pytest.fixture
def flower(services) -> Iterator[str]:
    port = processes.free_port()
    proc = processes.spawn(
        [
            str(processes.VENV_BIN / "celery"),
            "-A",
            "tasks.app",
            "flower",
            f"--port={port}",
            "--address=127.0.0.1",
            "--basic-auth=ops:s3cret-pass",
            "--conf=monitoring/flowerconfig.py",
        ],
        log_path=ARTIFACTS / "flower.log",
    )
    processes.wait_port(port, 30, proc)
    yield f"http://127.0.0.1:{port}"
    processes.stop(proc)


def test_flower_needs_auth_and_finds_order_tasks(client, worker, flower) -> None:
    assert httpx.get(f"{flower}/").status_code == 401
    assert httpx.get(f"{flower}/api/tasks").status_code == 401
    time.sleep(1.0)  # Flower subscribes to the event stream
    admin = admin_login(client)
    create_product(client, admin["token"], "SKU-FLOWER", stock=3)
    customer = register(client)
    pm = saved_card(customer["user"]["id"])
    order_id = place_order(client, customer["token"], [("SKU-FLOWER", 1)], pm).json()["data"][
        "order"
    ]["id"]
    names: set[str] = set()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        r = httpx.get(
            f"{flower}/api/tasks", params={"search": order_id}, auth=("ops", "s3cret-pass")
        )
        assert r.status_code == 200
        names = {t["name"] for t in r.json().values()}
        if "orders.ship_order" in names:
            break
        time.sleep(0.5)
    assert {
        "orders.reserve_inventory",
        "payments.create_payment_intent",
        "payments.confirm_payment",
        "orders.ship_order",
    } <= names
