"""Catalog: prices and stock belong to the server."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from mongoengine import NotUniqueError
from pydantic import Field

from api.deps import AdminUser
from api.envelope import ApiError, not_found, paginated, success
from api.schemas import ApiModel
from core.settings import get_settings
from models.product import Product
from tasks.dispatch import enqueue_outbox

router = APIRouter(prefix="/api/products", tags=["catalog"])
SKU_PATTERN = r"^[A-Z0-9][A-Z0-9\-]{1,39}$"


class ProductCreate(ApiModel):
    sku: str = Field(pattern=SKU_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    price_cents: int = Field(ge=0, le=100_000_000)
    stock: int = Field(ge=0, le=1_000_000)
    low_stock_threshold: int = Field(default=5, ge=0, le=1_000_000)


class ProductUpdate(ApiModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    price_cents: int | None = Field(default=None, ge=0, le=100_000_000)
    low_stock_threshold: int | None = Field(default=None, ge=0, le=1_000_000)
    restock: int | None = Field(default=None, ge=1, le=1_000_000)


@router.get("", summary="List the catalog (paginated)")
def list_products(
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    low_stock: Annotated[bool, Query(alias="lowStock")] = False,
):
    query = Product.objects
    if low_stock:
        # Few products: compare with each one's own threshold in Python.
        items = [p for p in query.order_by("sku") if p.available < (p.low_stock_threshold or 0)]
        total = len(items)
        items = items[(page - 1) * limit : page * limit]
    else:
        total = query.count()
        items = list(query.order_by("sku").skip((page - 1) * limit).limit(limit))
    return paginated(
        "products", [p.to_public() for p in items], page=page, limit=limit, total=total
    )


@router.get("/{sku}", summary="One product")
def get_product(sku: str):
    product = Product.objects(sku=sku).first()
    if product is None:
        raise not_found("product")
    return success({"product": product.to_public()})


@router.post("", status_code=201, summary="Create a product (admin)")
def create_product(body: ProductCreate, _: AdminUser):
    try:
        product = Product.create(
            sku=body.sku,
            name=body.name,
            description=body.description,
            price_cents=body.price_cents,
            currency=get_settings().currency,
            stock=body.stock,
            low_stock_threshold=body.low_stock_threshold,
        )
    except NotUniqueError as exc:
        raise ApiError(409, "SKU_TAKEN", f"sku {body.sku} already exists") from exc
    enqueue_outbox("products", product.sku)
    return success({"product": product.to_admin()}, status_code=201)


@router.patch("/{sku}", summary="Update price/name or restock (admin)")
def update_product(sku: str, body: ProductUpdate, _: AdminUser):
    product = Product.objects(sku=sku).first()
    if product is None:
        raise not_found("product")
    changes = body.model_dump(exclude_none=True, exclude={"restock"})
    if changes:
        product.modify(**changes, inc__version=1)
    if body.restock:
        product = Product.restock(sku, body.restock) or product
    enqueue_outbox("products", sku)
    product.reload()
    return success({"product": product.to_public()})
