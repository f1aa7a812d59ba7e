#!/usr/bin/env python
"""Operator CLI (Typer): seed, admin, and order tools. Run as `.venv/bin/python manage.py …`."""

from __future__ import annotations

import typer

from core.db import connect_mongo
from monitoring.logging import configure_logging

cli = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


@cli.callback()
def _setup() -> None:
    configure_logging()
    connect_mongo()


@cli.command()
def seed() -> None:
    """Create the demo catalog and the admin user (idempotent)."""
    from devstack.seed import seed_all

    for line in seed_all():
        typer.echo(line)


if __name__ == "__main__":
    cli()
