"""Order steps that move stock: reserve_inventory, ship_order, release_inventory, delivery."""

from __future__ import annotations

import secrets
import time
from datetime import timedelta

import structlog

from core.settings import get_settings
from models.order import Order, now_utc
from models.product import Product
from monitoring.metrics import ORDER_E2E_SECONDS, STEP_SECONDS
from tasks.app import celery_app
from tasks.base import OrderTask, stop_chain
from tasks.capture import capture_for_shipping, needs_capture
from tasks.events import flush_outbox
from tasks.outcomes import end_order
from workflows.reconciliation import delivery_due
from workflows.states import FINISHED, WAITING_ON_CUSTOMER, OrderStatus

log = structlog.get_logger(__name__)
CARRIERS = ("UPS", "FedEx", "DHL", "USPS")


def load_for_step(task: OrderTask, order_id: str, runs_from: OrderStatus) -> Order | None:
    """The order if this step should act on it; otherwise None (and the chain stops if due).

    A status already past this step means a duplicate run: later steps check for
    themselves. A finished or paused order stops the chain here.
    """
    order = Order.get(order_id)
    if order is None:
        log.warning("order_missing")
        stop_chain(task)
        return None
    status = order.status_enum
    if status == runs_from:
        return order
    if status in FINISHED or status in WAITING_ON_CUSTOMER:
        stop_chain(task)
    log.info("step_skipped", status=status.value, expected=runs_from.value)
    return None


def _release_all(order: Order) -> int:
    return sum(
        1
        for item in order.items
        if Product.release(item["sku"], str(order.id), int(item["quantity"]))
    )


@celery_app.task(bind=True, base=OrderTask, name="orders.reserve_inventory")
def reserve_inventory(self: OrderTask, order_id: str) -> str:
    """Hold every line's stock, or fail the order naming the sku that is short."""
    started = time.perf_counter()
    order = load_for_step(self, order_id, OrderStatus.PENDING)
    if order is None:
        return "skipped"
    for item in order.items:
        held, crossed = Product.reserve(item["sku"], order_id, int(item["quantity"]))
        if crossed:
            flush_outbox("products", item["sku"])  # low/out-of-stock alerts go out now
        if not held:
            reason = f"out of stock: {item['sku']}"
            _release_all(order)
            end_order(order_id, OrderStatus.FAILED, reason=reason, actor=f"task:{self.name}")
            stop_chain(self)
            STEP_SECONDS.labels("reserve_inventory", "failed").observe(
                time.perf_counter() - started
            )
            return "out_of_stock"
    moved = Order.transition(order, OrderStatus.RESERVED, actor=f"task:{self.name}")
    if moved is None:
        # Someone moved the order meanwhile (cancel): give the stock back if it ended.
        current = Order.get(order_id)
        if current is not None and current.status_enum in FINISHED:
            _release_all(current)
            stop_chain(self)
        return "conflict"
    flush_outbox("orders", order_id, moved.outbox)
    STEP_SECONDS.labels("reserve_inventory", "ok").observe(time.perf_counter() - started)
    return "reserved"


@celery_app.task(bind=True, base=OrderTask, name="orders.ship_order")
def ship_order(self: OrderTask, order_id: str) -> str:
    """Turn holds into sold stock, assign a carrier and tracking number, mark shipped."""
    started = time.perf_counter()
    order = load_for_step(self, order_id, OrderStatus.CONFIRMED)
    if order is None:
        return "skipped"
    if needs_capture(order):  # manual capture: take the authorized money before shipping
        order = capture_for_shipping(order, actor=f"task:{self.name}")
        if order is None:
            stop_chain(self)
            return "not_captured"
    for item in order.items:
        Product.commit(item["sku"], order_id, int(item["quantity"]))
    settings = get_settings()
    carrier = CARRIERS[int(str(order.id)[-2:], 16) % len(CARRIERS)]
    shipped_at = now_utc()
    fields = {
        "carrier": carrier,
        "tracking_number": f"{carrier[:2].upper()}{secrets.token_hex(6).upper()}",
        "shipped_at": shipped_at,
        "estimated_delivery": shipped_at + timedelta(seconds=settings.delivery_delay_seconds),
    }
    moved = Order.transition(
        order,
        OrderStatus.SHIPPED,
        actor=f"task:{self.name}",
        fields=fields,
        event_data={"carrier": carrier, "trackingNumber": fields["tracking_number"]},
    )
    if moved is None:
        return "conflict"
    flush_outbox("orders", order_id, moved.outbox)
    STEP_SECONDS.labels("ship_order", "ok").observe(time.perf_counter() - started)
    ORDER_E2E_SECONDS.observe((shipped_at - order.created_at).total_seconds())
    return "shipped"


@celery_app.task(bind=True, base=OrderTask, name="orders.release_inventory")
def release_inventory(self: OrderTask, order_id: str) -> int:
    """Compensation: give back every hold this order still has (idempotent)."""
    order = Order.get(order_id)
    if order is None:
        return 0
    released = _release_all(order)
    log.info("inventory_released", lines=released)
    return released


def deliver_due_orders(limit: int = 200) -> int:
    """Carrier simulation: shipped orders whose delay has passed become delivered."""
    settings = get_settings()
    cutoff = now_utc() - timedelta(seconds=settings.delivery_delay_seconds)
    delivered = 0
    for order in Order.objects(status=OrderStatus.SHIPPED.value, shipped_at__lte=cutoff).limit(
        limit
    ):
        if not delivery_due(order.shipped_at, now_utc(), settings.delivery_delay_seconds):
            continue
        moved = Order.transition(
            order,
            OrderStatus.DELIVERED,
            actor="carrier-simulation",
            fields={"delivered_at": now_utc()},
        )
        if moved is not None:
            delivered += 1
            flush_outbox("orders", str(order.id), moved.outbox)
    return delivered


@celery_app.task(name="maintenance.deliver_due_orders")
def deliver_due_orders_task() -> int:
    return deliver_due_orders()
