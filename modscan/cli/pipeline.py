"""``modscan migrate``, ``scan``, ``worker``, ``api``, ``requeue`` and ``export``: running
the pipeline and reading its results."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import click

from modscan.cli.common import cli_actor, load_settings, ready_database


@click.command()
def migrate() -> None:
    """Apply the database migrations (PostgreSQL or SQLite)."""
    from db.migrate import head_revision, upgrade

    url = load_settings().resolved_database_url
    upgrade(url)
    click.echo(f"database is at revision {head_revision(url)}")


@click.command()
@click.argument("source")
@click.option("--wait", is_flag=True, help="Distributed mode: follow progress to the end.")
def scan(source: str, wait: bool) -> None:
    """Scan s3://bucket/prefix or a local folder.

    Without MODSCAN_BROKER_URL the scan runs in this process (embedded mode); with it, the
    scan is queued for `modscan worker` processes.
    """
    settings = load_settings()
    ready_database(settings)
    if settings.embedded:
        from modscan.cli.reporting import embedded_scan

        embedded_scan(settings, source)
        return
    from workers.dispatch import BrokerUnavailable, InvalidSource, start_scan

    try:
        scan_id = start_scan(settings, source, allow_local=True, actor=cli_actor())
    except (BrokerUnavailable, InvalidSource) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"scan {scan_id} queued: {source}")
    if wait:
        from modscan.cli.reporting import follow_scan

        follow_scan(settings, scan_id)


@click.command()
@click.option("--queues", default="listing,inference", show_default=True)
@click.option("--concurrency", type=int, default=None, help="Task threads (default: setting).")
@click.option("--loglevel", default="INFO", show_default=True)
def worker(queues: str, concurrency: int | None, loglevel: str) -> None:
    """Run a Celery worker: one process per GPU, threads share its model and batches."""
    settings = load_settings()
    if settings.embedded:
        raise click.ClickException("set MODSCAN_BROKER_URL to run a worker")
    ready_database(settings)
    from workers.celery_app import app

    app.worker_main(
        [
            "worker",
            "--pool=threads",
            f"--concurrency={concurrency or settings.worker_concurrency}",
            f"--queues={queues}",
            f"--loglevel={loglevel}",
            "--without-gossip",
            "--without-mingle",
        ]
    )


@click.command()
@click.option("--host", default=None)
@click.option("--port", type=int, default=None)
def api(host: str | None, port: int | None) -> None:
    """Serve the HTTP API (OpenAPI at /docs)."""
    import uvicorn

    settings = load_settings()
    uvicorn.run("api.app:app", host=host or settings.api_host, port=port or settings.api_port)


@click.command()
@click.option(
    "--older-than",
    type=float,
    default=900,
    show_default=True,
    help="Seconds a pending item or listing must have been untouched.",
)
def requeue(older_than: float) -> None:
    """Enqueue again the work a broker lost (e.g. Redis restarted without AOF)."""
    settings = load_settings()
    if settings.embedded:
        raise click.ClickException("requeue needs MODSCAN_BROKER_URL")
    ready_database(settings)
    from workers.dispatch import Enqueuer
    from workers.requeue import requeue_stale

    stats = requeue_stale(settings, Enqueuer(settings), older_than_s=older_than)
    click.echo(f"requeued {stats.scans} listings and {stats.items} items")


@click.command()
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl")
@click.option("--scan", "scan_id", type=int, default=None)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None)
def export(fmt: str, scan_id: int | None, output: Path | None) -> None:
    """Stream results, one row per source object, duplicates and errors included."""
    from db.export import EXPORT_FIELDS, export_rows
    from db.session import session_scope

    settings = load_settings()
    url = ready_database(settings)
    handle = output.open("w", newline="") if output else sys.stdout
    try:
        writer = csv.DictWriter(handle, fieldnames=EXPORT_FIELDS) if fmt == "csv" else None
        if writer:
            writer.writeheader()
        with session_scope(url) as session:
            for row in export_rows(session, scan_id=scan_id):
                if writer:
                    writer.writerow(row)
                else:
                    handle.write(json.dumps(row) + "\n")
    finally:
        if output:
            handle.close()
