"""Operator CLI on real data: stuck, resume, cancel."""

from __future__ import annotations

from typer.testing import CliRunner

from manage import cli
from models.order import Order
from tests.factories import admin_login, create_product, place_order, register, wait_status

runner = CliRunner()


def test_stuck_resume_cancel(client, paused_worker) -> None:
    admin = admin_login(client)
    create_product(client, admin["token"], "SKU-CLI", stock=4)
    customer = register(client)
    order_id = place_order(client, customer["token"], [("SKU-CLI", 1)]).json()["data"]["order"][
        "id"
    ]
    paused_worker.purge()  # the chain message is lost: the order is stuck in pending

    listed = runner.invoke(cli, ["stuck", "--seconds", "0"])
    assert listed.exit_code == 0, listed.output
    assert Order.get(order_id).order_number in listed.output

    resumed = runner.invoke(cli, ["resume", order_id])
    assert resumed.exit_code == 0 and "orders.reserve_inventory" in resumed.output
    paused_worker.resume()
    wait_status(client, customer["token"], order_id, {"payment_pending"})

    cancelled = runner.invoke(cli, ["cancel", order_id, "--reason", "operator test"])
    assert cancelled.exit_code == 0, cancelled.output
    assert Order.get(order_id).status == "cancelled"
    again = runner.invoke(cli, ["cancel", order_id, "--reason", "twice"])
    assert again.exit_code == 1
