"""Refunding a received return through the payments path, once per return."""

from __future__ import annotations

from celery import Task

from models.order import Order
from models.order_returns import ReturnConflict, find_return, move_return
from tasks.app import celery_app
from tasks.base import OrderTask
from tasks.events import flush_outbox
from tasks.payment_steps import refund_order
from workflows.returns import ReturnStatus

REFUND_RETURN = "payments.refund_return"


@celery_app.task(bind=True, base=OrderTask, name=REFUND_RETURN)
def refund_return(self: Task, order_id: str, return_id: str) -> str:
    """Refund the lines of a received return (key ``return:<id>``), then mark it refunded."""
    order = Order.get(order_id)
    ret = find_return(order, return_id) if order is not None else None
    if ret is None:
        return "unknown_return"
    if ret["status"] != ReturnStatus.RECEIVED:
        return ret["status"]  # refunded already, or not received yet
    key = f"return:{return_id}"
    done = next((r for r in order.refunds or [] if r.get("key") == key), None)
    if done is None:
        refund_order(
            order,
            amount_cents=int(ret["refundCents"]),
            key=key,
            actor=f"task:{self.name}",
            reason=f"return {return_id}",
        )
        order = Order.get(order_id)
        done = next((r for r in order.refunds or [] if r.get("key") == key), None)
    try:
        move_return(
            order_id,
            return_id,
            ReturnStatus.REFUNDED,
            actor=f"task:{self.name}",
            fields={"refundId": done["id"] if done else None},
        )
    except ReturnConflict:
        return "already_refunded"
    flush_outbox("orders", order_id)
    return "refunded"
