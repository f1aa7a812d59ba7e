"""Stock hoarding limits when placing an order (issue 15, unrestricted business flow).

Unpaid orders hold stock for the payment window, so one account could empty the catalog.
Each limit is a setting (0 switches it off):

- ``max_unpaid_orders_per_customer``: open unpaid orders (pending → requires_action) per
  customer; one more answers 409 ``TOO_MANY_UNPAID_ORDERS``;
- ``max_unpaid_units_per_product``: units of one sku across a customer's unpaid orders,
  this one included; over it answers 409 ``UNPAID_UNITS_LIMIT``.

Check and insert run under a per-customer Redis lock (``placement_lock``), so concurrent
requests from one account, on any replica, cannot overshoot; a lock not obtained within
``order_placement_lock_wait`` seconds answers 429 ``ORDER_IN_PROGRESS``. Orders placed
without a payment method hold stock for ``unpaid_hold_no_method_seconds`` only (the
payments sweep times them out, see tasks/reconcile.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from redis.exceptions import LockError, RedisError

from api.deps import CurrentUser
from api.envelope import ApiError
from core.redis_client import get_redis
from core.settings import get_settings
from models.order import Order
from monitoring.logging import get_logger
from workflows.states import UNPAID

log = get_logger(__name__)


def placement_lock(user: CurrentUser) -> Iterator[None]:
    """Route dependency: one order placement at a time per customer."""
    settings = get_settings()
    if not settings.max_unpaid_orders_per_customer and not settings.max_unpaid_units_per_product:
        yield
        return
    lock = get_redis().lock(
        f"oms:order-place:{user.id}",
        timeout=10,
        blocking_timeout=settings.order_placement_lock_wait,
    )
    try:
        acquired = lock.acquire()
    except RedisError as exc:  # the limits need Redis only for exactness: degrade, say so
        log.warning("order_placement_lock_unavailable", error=type(exc).__name__)
        yield
        return
    if not acquired:
        raise ApiError(
            429,
            "ORDER_IN_PROGRESS",
            "another order of yours is being placed, retry in a moment",
            headers={"Retry-After": "1"},
        )
    try:
        yield
    finally:
        try:
            lock.release()
        except (LockError, RedisError):
            pass  # expired or Redis gone: its timeout frees it


def enforce_unpaid_limits(user_id: str, items: list[dict[str, Any]]) -> None:
    """Raise 409 if this order would pass a customer's unpaid-order or unpaid-unit limit."""
    settings = get_settings()
    max_orders = settings.max_unpaid_orders_per_customer
    max_units = settings.max_unpaid_units_per_product
    if not max_orders and not max_units:
        return
    unpaid = list(
        Order.objects(user_id=user_id, status__in=[s.value for s in UNPAID]).only("items")
    )
    if max_orders and len(unpaid) >= max_orders:
        raise ApiError(
            409,
            "TOO_MANY_UNPAID_ORDERS",
            f"you have {len(unpaid)} unpaid orders (at most {max_orders}): pay or cancel "
            "one before placing another",
        )
    if max_units:
        held: Counter[str] = Counter()
        for order in unpaid:
            for line in order.items or []:
                held[line["sku"]] += int(line["quantity"])
        errors = [
            {
                "field": f"items.{n}.quantity",
                "message": f"at most {max_units} unpaid units of {line['sku']} per customer "
                f"({held[line['sku']]} already in unpaid orders)",
            }
            for n, line in enumerate(items)
            if held[line["sku"]] + int(line["quantity"]) > max_units
        ]
        if errors:
            raise ApiError(
                409,
                "UNPAID_UNITS_LIMIT",
                f"too many units held by your unpaid orders (at most {max_units} per product)",
                errors,
            )
