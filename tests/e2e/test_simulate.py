"""`manage.py simulate` drives real traffic through a live API and the worker."""

from __future__ import annotations

import time

from bench.simulate import simulate
from core.settings import get_settings
from models.order import Order
from tests.factories import admin_login, create_product


def test_simulate_places_orders_that_settle(client, worker, live_api) -> None:
    admin = admin_login(client)
    create_product(client, admin["token"], "SKU-SIM-A", stock=200)
    create_product(client, admin["token"], "SKU-SIM-B", stock=200)
    s = get_settings()
    outcome = simulate(
        live_api, s.stripe_api_base, s.stripe_api_key, orders=8, rate=20, customers=2, seed=7
    )
    assert outcome.placed == 8 and outcome.rejected == 0, outcome.errors
    settled = {"shipped", "failed", "cancelled", "requires_action"}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        statuses = [o.status for o in Order.objects.only("status")]
        if len(statuses) == 8 and all(s in settled for s in statuses):
            break
        time.sleep(0.3)
    assert len(statuses) == 8 and all(s in settled for s in statuses), statuses
    assert "shipped" in statuses
