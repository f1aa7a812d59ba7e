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


@cli.command()
def schema() -> None:
    """Create every collection and index (idempotent; seed runs it too). Run it once
    before starting processes against a new database."""
    from models.schema import ensure_schema

    typer.echo(f"schema: {', '.join(ensure_schema())}")


@cli.command("create-admin")
def create_admin(
    email: str = typer.Option(..., help="the admin's email (normalised to lowercase)"),
    password: str = typer.Option(
        ..., prompt=True, hide_input=True, confirmation_prompt=True, help="at least 8 characters"
    ),
    promote_existing: bool = typer.Option(
        False,
        "--promote-existing",
        help="make an existing customer account admin (its password is reset, its tokens revoked)",
    ),
) -> None:
    """Create the admin user. An existing non-admin account is promoted only with
    --promote-existing; any change revokes every token the account holds."""
    from models.user import ExistingAccountNotAdmin, User

    if len(password) < 8:
        raise typer.BadParameter("password must be at least 8 characters", param_hint="--password")
    try:
        user, changed = User.ensure_admin(email, password, promote_existing=promote_existing)
    except ExistingAccountNotAdmin as exc:
        typer.echo(
            f"{exc} is an existing customer account, not an admin: whoever registered it would "
            "become admin. Check who owns it; re-run with --promote-existing to promote it "
            "(its password is reset and every token it holds is revoked).",
            err=True,
        )
        raise typer.Exit(1) from exc
    if changed:
        typer.echo(f"admin {user.email} created/updated; its earlier tokens are revoked")
    else:
        typer.echo(f"admin {user.email} already up to date")


@cli.command("rotate-data-key")
def rotate_data_key(
    dry_run: bool = typer.Option(False, "--dry-run", help="count, write nothing"),
) -> None:
    """Re-encrypt every encrypted field under the first key of DATA_KEYS. Safe to interrupt
    and re-run; keep the old key in DATA_KEYS until this reports nothing left."""
    from core.crypto import KeyRing
    from core.settings import get_settings
    from models.rotation import rotate_data_key as rotate

    keyring = KeyRing.from_settings(get_settings())
    report = rotate(keyring, dry_run=dry_run, progress=typer.echo)
    verb = "would rewrite" if dry_run else "rewrote"
    typer.echo(
        f"rotate-data-key: {verb} {report.rewritten}, already under {keyring.primary_kid!r} "
        f"{report.current}, changed meanwhile {report.changed_meanwhile}"
    )
    for line in report.unreadable:
        typer.echo(f"unreadable: {line}", err=True)
    if not report.done:
        raise typer.Exit(1)


@cli.command()
def resume(order_id: str) -> None:
    """Rebuild and enqueue the remaining chain of an order from its stored status."""
    from models.order import Order
    from tasks import dispatch

    Order.clear_attention(order_id)
    steps = dispatch.resume(order_id, actor="operator")
    typer.echo(
        f"{order_id}: enqueued {', '.join(steps) if steps else 'nothing (finished or paused)'}"
    )


@cli.command()
def cancel(order_id: str, reason: str = typer.Option(..., help="why, kept in the history")) -> None:
    """Cancel an order before shipping; compensations release stock and void/refund payment."""
    from tasks import dispatch

    order, previous = dispatch.cancel(order_id, reason, actor="operator")
    if previous is None:
        status = order.status if order else "missing"
        typer.echo(f"{order_id}: not cancelled (status {status})", err=True)
        raise typer.Exit(1)
    typer.echo(f"{order_id}: {previous.value} -> cancelled; compensations enqueued")


@cli.command()
def stuck(
    seconds: int = typer.Option(None, help="idle threshold (default: STUCK_ORDER_SECONDS)"),
) -> None:
    """List unfinished orders not updated for a while, and those needing attention."""
    from datetime import timedelta

    from rich.console import Console
    from rich.table import Table

    from core.settings import get_settings
    from models.order import Order, now_utc
    from workflows.states import FINISHED

    threshold = seconds if seconds is not None else get_settings().stuck_order_seconds
    cutoff = now_utc() - timedelta(seconds=threshold)
    unfinished = [s.value for s in FINISHED]
    rows = Order.objects(status__nin=unfinished, updated_at__lte=cutoff).order_by("updated_at")
    flagged = Order.objects(needs_attention=True)
    table = Table(title=f"orders idle > {threshold}s or needing attention")
    for col in ("order", "number", "status", "updated", "resumes", "attention"):
        table.add_column(col)
    seen: set[str] = set()
    for order in [*rows, *flagged]:
        if str(order.id) in seen:
            continue
        seen.add(str(order.id))
        table.add_row(
            str(order.id),
            order.order_number,
            order.status,
            order.updated_at.isoformat(timespec="seconds"),
            str(order.resume_count or 0),
            order.attention_reason or "",
        )
    Console(width=160).print(table)
    typer.echo(f"{len(seen)} order(s)")


@cli.command("check-invariants")
def check_invariants() -> None:
    """Stock conservation, one charge per order, no leaked holds, empty outboxes, no stuck
    orders. Prints a table; exits non-zero on any violation."""
    from rich.console import Console
    from rich.table import Table

    from tasks.invariants import check_all

    results = check_all()
    table = Table(title="invariants")
    for col in ("check", "violations", "first"):
        table.add_column(col)
    failed = 0
    for name, violations in results.items():
        failed += len(violations)
        first = f"{violations[0].subject}: {violations[0].detail}" if violations else ""
        table.add_row(name, str(len(violations)), first)
    Console(width=160).print(table)
    if failed:
        typer.echo(f"FAILED: {failed} violation(s)", err=True)
        raise typer.Exit(1)
    typer.echo("all invariants hold")


def _since(value: str | None):
    """An ISO-8601 time, or an age such as 30m, 2h, 7d (UTC)."""
    import re
    from datetime import UTC, datetime, timedelta

    if not value:
        return None
    match = re.fullmatch(r"(\d+)([smhd])", value.strip())
    if match:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
        return datetime.now(UTC) - timedelta(**{unit: int(match.group(1))})
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise typer.BadParameter("use ISO-8601 or an age like 30m, 2h, 7d") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@cli.command()
def replay(
    type: str = typer.Option(None, "--type", help="event type, or a prefix like order.*"),
    aggregate: str = typer.Option(None, help="aggregate id (order id, sku, user id)"),
    correlation: str = typer.Option(None, help="correlation id"),
    since: str = typer.Option(None, help="ISO-8601 time or an age like 30m, 2h, 7d"),
    handler: list[str] = typer.Option(None, help="only these handlers (repeatable)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="count only, run nothing"),
) -> None:
    """Re-run event handlers (idempotent) for the stored events matching the filter."""
    from models.event import EventFilter, count_matching
    from tasks import dispatch
    from tasks.events import replay_runs

    flt = EventFilter(
        type=type, aggregate_id=aggregate, correlation_id=correlation, occurred_from=_since(since)
    )
    if flt.is_empty():
        raise typer.BadParameter("give at least one of --type, --aggregate, --correlation, --since")
    known = dispatch.handler_subscriptions()
    unknown = sorted(set(handler or ()) - set(known))
    if unknown:
        raise typer.BadParameter(
            f"unknown handler(s): {', '.join(unknown)}", param_hint="--handler"
        )
    runs: dict[str, int] = {}
    for name, _ in replay_runs(flt, handler or None):
        runs[name] = runs.get(name, 0) + 1
    typer.echo(f"{count_matching(flt)} event(s) match; handler runs: {runs or 'none'}")
    if dry_run:
        typer.echo("dry run: nothing enqueued")
        return
    dispatch.enqueue_replay(flt.to_json(), handler or None)
    typer.echo("replay enqueued")


@cli.command()
def events(
    correlation: str = typer.Option(None, help="correlation id"),
    aggregate: str = typer.Option(None, help="aggregate id (order id, sku, user id)"),
) -> None:
    """Print a correlation id's (or an aggregate's) events, oldest first, with causation."""
    from rich.console import Console
    from rich.table import Table

    from models.event import correlation_chain, timeline_for

    if not correlation and not aggregate:
        raise typer.BadParameter("give --correlation or --aggregate")
    rows = correlation_chain(correlation) if correlation else timeline_for(aggregate)
    table = Table(title=f"events of {correlation or aggregate}")
    for col in ("occurred", "type", "aggregate", "v", "event", "caused by"):
        table.add_column(col)
    for e in rows:
        cause = e["causationId"]
        cause_text = f"{cause[:8]} ({e['causationType']})" if cause and e["causationType"] else ""
        table.add_row(
            e["occurredAt"],
            e["type"],
            e["aggregateId"],
            str(e["aggregateVersion"]),
            e["eventId"][:8],
            cause_text or (cause or "")[:8],
        )
    Console(width=180).print(table)
    typer.echo(f"{len(rows)} event(s)")


@cli.command("redrive-dead-letters")
def redrive_dead_letters(
    handler: str = typer.Option(None, help="only this handler's dead letters"),
) -> None:
    """Run every unresolved dead letter's work again (fresh retries)."""
    from models.dead_letter import DeadLetter
    from tasks import dispatch

    query = DeadLetter.objects(resolved=False)
    if handler:
        query = query.filter(handler=handler)
    count = 0
    for dead in query:
        dead.mark_retried()
        dispatch.enqueue_task(dead.task, **dead.kwargs)
        count += 1
    typer.echo(f"{count} dead letter(s) re-enqueued")


@cli.command()
def simulate(
    orders: int = typer.Option(50, min=1, max=100_000, help="orders to place"),
    rate: float = typer.Option(2.0, min=0.1, max=200, help="orders per second"),
    customers: int = typer.Option(5, min=1, max=100, help="simulated customers"),
    base_url: str = typer.Option(None, help="API base (default: PUBLIC_BASE_URL)"),
) -> None:
    """Drive realistic traffic (good, declined and 3-D Secure cards, cancels) through the API."""
    from bench.simulate import simulate as run
    from core.settings import get_settings

    settings = get_settings()
    if "api.stripe.com" in settings.stripe_api_base:
        typer.echo("refusing to simulate against real Stripe", err=True)
        raise typer.Exit(2)
    outcome = run(
        base_url or settings.public_base_url,
        settings.stripe_api_base,
        settings.stripe_api_key,
        orders=orders,
        rate=rate,
        customers=customers,
    )
    typer.echo(
        f"placed {outcome.placed}, rejected {outcome.rejected}, cancelled "
        f"{outcome.cancelled}, 3-D Secure completed {outcome.authenticated}"
    )
    for error in outcome.errors[:5]:
        typer.echo(f"  {error}", err=True)


if __name__ == "__main__":
    cli()
