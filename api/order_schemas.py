"""Order request schemas and the public (camelCase) view of an order."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import Field, field_validator

from api.schemas import ApiModel
from core.bus import to_jsonable
from core.crypto import KeyRing, decrypt_json
from models.order import Order

SKU_PATTERN = r"^[A-Z0-9][A-Z0-9\-]{1,39}$"
PAYMENT_METHOD_PATTERN = r"^(pm|card|src)_[A-Za-z0-9_]{3,64}$"
SORTS = {
    "createdAt": "created_at",
    "-createdAt": "-created_at",
    "updatedAt": "updated_at",
    "-updatedAt": "-updated_at",
    "totalCents": "total_cents",
    "-totalCents": "-total_cents",
}


class OrderItemIn(ApiModel):
    sku: str = Field(pattern=SKU_PATTERN)
    quantity: int = Field(ge=1, le=100)


class ShippingAddress(ApiModel):
    name: str = Field(min_length=1, max_length=120)
    line1: str = Field(min_length=1, max_length=200)
    line2: str | None = Field(default=None, max_length=200)
    city: str = Field(min_length=1, max_length=100)
    postal_code: str = Field(min_length=2, max_length=20, pattern=r"^[A-Za-z0-9 \-]+$")
    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")


class OrderCreate(ApiModel):
    items: list[OrderItemIn] = Field(min_length=1, max_length=50)
    shipping_address: ShippingAddress
    payment_method_id: str | None = Field(default=None, pattern=PAYMENT_METHOD_PATTERN)
    notes: str | None = Field(default=None, max_length=500)

    @field_validator("items")
    @classmethod
    def _merge_skus(cls, items: list[OrderItemIn]) -> list[OrderItemIn]:
        # A sku listed twice is one line with the quantities added (a schema cannot say
        # "unique by sku"); the total still has to be within 1..100.
        totals: dict[str, int] = {}
        for item in items:
            totals[item.sku] = totals.get(item.sku, 0) + item.quantity
        if any(q > 100 for q in totals.values()):
            raise ValueError("at most 100 of each sku in one order")
        return [OrderItemIn(sku=sku, quantity=q) for sku, q in totals.items()]


class OrderUpdate(ApiModel):
    shipping_address: ShippingAddress | None = None
    notes: str | None = Field(default=None, max_length=500)
    status: str | None = Field(default=None, max_length=32)
    reason: str | None = Field(default=None, max_length=300)


class CancelBody(ApiModel):
    reason: str = Field(min_length=1, max_length=300)


def iso_utc(value: datetime | None) -> str | None:
    # Mongo hands datetimes back without a zone; every one we store is UTC.
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def history_public(order: Order) -> list[dict[str, Any]]:
    return [
        {
            "status": h.get("status"),
            "at": iso_utc(h.get("at")),
            "reason": h.get("reason"),
            "actor": h.get("actor"),
        }
        for h in order.history or []
    ]


def return_public(ret: dict[str, Any]) -> dict[str, Any]:
    """A return as its customer and admins see it (dates as ISO strings)."""
    return to_jsonable(ret)


def payment_extras_public(order: Order) -> dict[str, Any]:
    """Payment facts Stripe reported beyond paid/refunded (issue 14): the refunds one by one
    (``source`` api or stripe) and the disputes, oldest first."""
    disputes = sorted((order.disputes or {}).values(), key=lambda d: d.get("eventCreated") or 0)
    return {
        "refunds": [
            {"id": r.get("id"), "amountCents": r.get("amountCents"), "source": r.get("source")}
            for r in order.refunds or []
        ],
        "disputes": [
            {k: d.get(k) for k in ("id", "amountCents", "currency", "reason", "status", "dueBy")}
            for d in disputes
        ],
        "disputeStatus": order.dispute_status,
    }


def order_public(order: Order, keyring: KeyRing | None = None) -> dict[str, Any]:
    """The order as its owner and admins see it (address decrypted for them only)."""
    return {
        "id": str(order.id),
        "orderNumber": order.order_number,
        "userId": order.user_id,
        "userEmail": order.user_email,
        "status": order.status,
        "statusReason": order.status_reason,
        "items": order.items,
        "subtotalCents": order.subtotal_cents,
        "taxCents": order.tax_cents,
        "shippingCents": order.shipping_cents,
        "totalCents": order.total_cents,
        "currency": order.currency,
        "paidCents": order.paid_cents or 0,
        "refundedCents": order.refunded_cents or 0,
        "shippingAddress": decrypt_json(order.shipping_address_enc, keyring),
        "notes": order.notes or "",
        "paymentMethodId": order.payment_method_id,
        "paymentIntentId": order.payment_intent_id,
        "nextAction": order.next_action,
        "carrier": order.carrier,
        "trackingNumber": order.tracking_number,
        "estimatedDelivery": iso_utc(order.estimated_delivery),
        "shippedAt": iso_utc(order.shipped_at),
        "deliveredAt": iso_utc(order.delivered_at),
        "returns": [return_public(r) for r in order.returns or []],
        "needsAttention": bool(order.needs_attention),
        "attentionReason": order.attention_reason,
        **payment_extras_public(order),
        "correlationId": order.correlation_id,
        "version": order.version,
        "history": history_public(order),
        "createdAt": iso_utc(order.created_at),
        "updatedAt": iso_utc(order.updated_at),
    }


def order_summary(order: Order) -> dict[str, Any]:
    """List rows: no personal data, no history."""
    return {
        "id": str(order.id),
        "orderNumber": order.order_number,
        "userId": order.user_id,
        "status": order.status,
        "statusReason": order.status_reason,
        "totalCents": order.total_cents,
        "currency": order.currency,
        "itemCount": sum(int(i.get("quantity", 0)) for i in order.items or []),
        "needsAttention": bool(order.needs_attention),
        "disputeStatus": order.dispute_status,
        # Lets a client tell a stale list copy from the live events it already applied.
        "version": order.version,
        "createdAt": iso_utc(order.created_at),
        "updatedAt": iso_utc(order.updated_at),
    }
