"""``modscan ingest sqs|redis``: consume image notifications from a queue."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from modscan.cli.common import load_context, load_settings, ready_database
from modscan.settings import Settings

if TYPE_CHECKING:
    from workers.dispatch import Dispatch
    from workers.ingest.register import IngestStats


@click.group()
def ingest() -> None:
    """Consume image notifications from a queue."""


def _run_ingest(settings: Settings, consume: Callable[[Dispatch], IngestStats]) -> None:
    """Run a queue consumer with the mode's dispatch, then print its stats line."""
    if settings.embedded:
        from workers.embedded import EmbeddedDispatch

        ctx = load_context(settings)
        dispatch = EmbeddedDispatch(ctx)
        try:
            stats = consume(dispatch)
            dispatch.finish()
        finally:
            dispatch.close()
            ctx.close()
    else:
        from workers.dispatch import Enqueuer

        stats = consume(Enqueuer(settings))
    click.echo(
        f"{stats.messages} messages, {stats.refs} objects, {stats.dispatched} new, "
        f"{stats.invalid} invalid"
    )


@ingest.command("sqs")
@click.option("--queue-url", required=True)
@click.option("--max-messages", type=int, default=None, help="Stop after this many messages.")
@click.option("--idle-timeout", type=float, default=None, help="Stop after this long idle (s).")
def ingest_sqs(queue_url: str, max_messages: int | None, idle_timeout: float | None) -> None:
    """Read S3 event notifications (or modscan messages) from SQS and scan what they name."""
    settings = load_settings()
    ready_database(settings)
    from workers.ingest.sqs import consume_sqs

    _run_ingest(
        settings,
        lambda dispatch: consume_sqs(
            settings, queue_url, dispatch, max_messages=max_messages, idle_timeout_s=idle_timeout
        ),
    )


@ingest.command("redis")
@click.option("--url", "redis_url", required=True, help="redis://host:6379/0 that MinIO writes to.")
@click.option("--key", required=True, help="The list MinIO's notify_redis target pushes to.")
@click.option("--max-messages", type=int, default=None, help="Stop after this many messages.")
@click.option("--idle-timeout", type=float, default=None, help="Stop after this long idle (s).")
def ingest_redis(
    redis_url: str, key: str, max_messages: int | None, idle_timeout: float | None
) -> None:
    """Read MinIO notifications (Redis target, access format) from a list and scan them."""
    settings = load_settings()
    ready_database(settings)
    from workers.ingest.redis_list import consume_redis_list

    _run_ingest(
        settings,
        lambda dispatch: consume_redis_list(
            settings,
            redis_url,
            key,
            dispatch,
            max_messages=max_messages,
            idle_timeout_s=idle_timeout,
        ),
    )
