"""``modscan relay``: deliver the outbox's events, show its counts, retry or prune them."""

from __future__ import annotations

import click

from modscan.cli.common import load_settings, ready_database
from modscan.settings import Settings


def _outbox_housekeeping(
    settings: Settings, url: str, *, retry_failed: bool, prune_days: float | None
) -> None:
    from datetime import timedelta

    from db.outbox import prune_delivered
    from db.outbox import retry_failed as retry
    from db.session import session_scope

    with session_scope(url) as session:
        if retry_failed:
            n = retry(session, max_attempts=settings.outbox_max_attempts)
            click.echo(f"{n} given-up events will be tried again")
        if prune_days is not None:
            n = prune_delivered(session, older_than=timedelta(days=prune_days))
            click.echo(f"pruned {n} events delivered more than {prune_days:g} days ago")


@click.command()
@click.option("--once", is_flag=True, help="Deliver what is due now, then exit.")
@click.option("--poll", type=float, default=None, help="Seconds between idle rounds (setting).")
@click.option("--limit", type=int, default=100, show_default=True, help="Events per round.")
@click.option("--status", "show_status", is_flag=True, help="Print the outbox counts and exit.")
@click.option(
    "--retry-failed",
    is_flag=True,
    help="Give events the relay gave up on a fresh set of attempts, then exit.",
)
@click.option(
    "--prune-days",
    type=float,
    default=None,
    help="Delete events delivered more than this many days ago, then exit.",
)
def relay(
    once: bool,
    poll: float | None,
    limit: int,
    show_status: bool,
    retry_failed: bool,
    prune_days: float | None,
) -> None:
    """Deliver outbound events (webhook, SQS, Redis stream) from the outbox, at least once."""
    settings = load_settings()
    url = ready_database(settings)
    if retry_failed or prune_days is not None:
        _outbox_housekeeping(settings, url, retry_failed=retry_failed, prune_days=prune_days)
        return
    if show_status:
        from db.outbox import outbox_status
        from db.session import session_scope

        with session_scope(url) as session:
            rows = outbox_status(session, max_attempts=settings.outbox_max_attempts)
        click.echo(f"{'target':<10}{'pending':>10}{'failing':>10}{'failed':>10}{'delivered':>12}")
        for row in rows:
            click.echo(
                f"{row.target:<10}{row.pending:>10}{row.failing:>10}{row.failed:>10}"
                f"{row.delivered:>12}"
            )
        return
    import signal
    import threading

    from workers.outbound.relay import OutboxNotConfigured, run_relay

    stop = threading.Event()  # SIGTERM finishes the delivery in hand, then stops
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stats = run_relay(settings, poll_s=poll, until_idle=once, limit=limit, stop=stop)
    except OutboxNotConfigured as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        return
    finally:
        signal.signal(signal.SIGTERM, previous)
    click.echo(f"{stats.delivered} delivered, {stats.failed} failed, {stats.released} handed back")
