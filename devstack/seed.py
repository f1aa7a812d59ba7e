"""Idempotent seed for `make up`: demo catalog and the admin user from settings."""

from __future__ import annotations

from collections.abc import Iterator

from core.db import get_db


def seed_all() -> Iterator[str]:
    db = get_db()
    yield f"seed: database {db.name} reachable"
