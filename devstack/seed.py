"""Idempotent seed for `make up`: demo catalog and the admin user from settings."""

from __future__ import annotations

from collections.abc import Iterator

from core.db import get_db


def seed_all() -> Iterator[str]:
    from models.schema import ensure_schema

    db = get_db()
    yield f"seed: database {db.name} reachable"
    yield f"seed: {len(ensure_schema())} collections and their indexes in place"
    yield seed_admin()
    yield seed_catalog()


DEMO_CATALOG = (
    ("TSHIRT-BLK-M", "Black T-shirt (M)", 1999, 120),
    ("TSHIRT-WHT-L", "White T-shirt (L)", 1999, 80),
    ("HOODIE-GRY-M", "Grey hoodie (M)", 4999, 40),
    ("MUG-LOGO", "Logo mug", 1299, 200),
    ("STICKER-PACK", "Sticker pack", 499, 500),
    ("CAP-NAVY", "Navy cap", 2499, 6),
    ("BACKPACK-23L", "Backpack 23 L", 8900, 25),
    ("NOTEBOOK-A5", "Dot-grid notebook A5", 1450, 3),
)


def seed_catalog() -> str:
    """Create the demo products that do not exist yet (never resets stock)."""
    from core.settings import get_settings
    from models.product import Product

    currency = get_settings().currency
    created = 0
    for sku, name, price, stock in DEMO_CATALOG:
        if Product.objects(sku=sku).first() is None:
            Product.create(sku=sku, name=name, price_cents=price, currency=currency, stock=stock)
            created += 1
    return f"seed: catalog {created} created, {len(DEMO_CATALOG) - created} already there"


def seed_admin() -> str:
    """Create or repair the admin from settings (idempotent: no write when up to date)."""
    from core.settings import get_settings
    from models.user import ExistingAccountNotAdmin, User

    settings = get_settings()
    try:
        user, changed = User.ensure_admin(settings.admin_email, settings.admin_password)
    except ExistingAccountNotAdmin:
        return (
            f"seed: admin NOT created: {settings.admin_email} is an existing customer account "
            "(run manage.py create-admin --promote-existing after checking who owns it)"
        )
    return f"seed: admin {user.email} {'created/updated' if changed else 'up to date'}"
