"""The ``modscan`` command. Light commands start fast: TensorFlow loads only to score."""

from __future__ import annotations

import csv
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from modscan.cli_support import cli_actor, load_settings, ready_database
from modscan.settings import Settings

if TYPE_CHECKING:
    from workers.ingest import Dispatch, IngestStats


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log progress details.")
def main(verbose: bool) -> None:
    """modscan: tell AI-generated images from real ones, in bulk."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@main.command()
def migrate() -> None:
    """Apply the database migrations (PostgreSQL or SQLite)."""
    from db.migrate import head_revision, upgrade

    url = load_settings().resolved_database_url
    upgrade(url)
    click.echo(f"database is at revision {head_revision(url)}")


@main.command()
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
        from modscan.embedded_cli import embedded_scan

        embedded_scan(settings, source)
        return
    from workers.scans import BrokerUnavailable, InvalidSource, start_scan

    try:
        scan_id = start_scan(settings, source, allow_local=True, actor=cli_actor())
    except (BrokerUnavailable, InvalidSource) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"scan {scan_id} queued: {source}")
    if wait:
        from modscan.embedded_cli import follow_scan

        follow_scan(settings, scan_id)


@main.command()
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


@main.command()
@click.option("--host", default=None)
@click.option("--port", type=int, default=None)
def api(host: str | None, port: int | None) -> None:
    """Serve the HTTP API (OpenAPI at /docs)."""
    import uvicorn

    settings = load_settings()
    uvicorn.run("api.app:app", host=host or settings.api_host, port=port or settings.api_port)


@main.group()
def ingest() -> None:
    """Consume image notifications from a queue."""


def _run_ingest(settings: Settings, consume: Callable[[Dispatch], IngestStats]) -> None:
    """Run a queue consumer with the mode's dispatch, then print its stats line."""
    if settings.embedded:
        from modscan.embedded_cli import embedded_dispatch

        dispatch, finish = embedded_dispatch(settings)
        stats = consume(dispatch)
        finish()
    else:
        from workers.scans import Enqueuer

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
    from workers.ingest import consume_sqs

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
    from workers.ingest_redis import consume_redis_list

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


@main.command()
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
    from workers.requeue import requeue_stale
    from workers.scans import Enqueuer

    stats = requeue_stale(settings, Enqueuer(settings), older_than_s=older_than)
    click.echo(f"requeued {stats.scans} listings and {stats.items} items")


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


@main.command()
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


@main.command()
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


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--images", type=int, default=4096, show_default=True)
@click.option("--skip-s3", is_flag=True, help="Leave out the S3 measurements.")
@click.option(
    "--check",
    type=click.Choice(["off", "hflip", "jpeg_q75"]),
    default="hflip",
    show_default=True,
    help="The policy's robustness check during the pipeline runs (hflip is the default policy).",
)
def bench(as_json: bool, images: int, skip_s3: bool, check: str) -> None:
    """Measure ceiling, naive, pipeline and S3 throughput on this machine."""
    from modscan.bench import run_bench

    run_bench(load_settings(), images=images, as_json=as_json, skip_s3=skip_s3, check=check)


@main.command()
@click.option(
    "--data",
    type=click.Path(exists=True, path_type=Path),
    required=True,
    help="Folder with train/ and val/ (or train.tar.gz and val.tar.gz) in the CIFAKE layout.",
)
@click.option("--backbone", default="EfficientNetB6", show_default=True)
@click.option("--image-size", type=int, default=32, show_default=True)
@click.option("--epochs", type=int, default=3, show_default=True)
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option("--learning-rate", type=float, default=2e-3, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("models/efficientnetb6-cifake"),
    show_default=True,
)
@click.option(
    "--time-budget",
    type=float,
    default=None,
    help="Stop after this many minutes, checkpointed; run the command again to resume.",
)
@click.option(
    "--init-from",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Start from this artifact's weights instead of a random initialisation.",
)
@click.option("--steps-per-epoch", type=int, default=None, help="Default: the whole train split.")
@click.option("--float32-weights", is_flag=True, help="Ship float32 weights (twice the size).")
@click.option(
    "--export-only",
    is_flag=True,
    help="Write the artifact from the checkpoints' best weights without training further.",
)
@click.option(
    "--no-recompute-bn",
    is_flag=True,
    help="Keep BatchNorm's moving averages instead of recomputing them on training images.",
)
@click.option(
    "--rescale-augment",
    type=click.FloatRange(0.0, 1.0),
    default=0.0,
    show_default=True,
    help="Share of training images blurred by an up-and-down rescale.",
)
def train(
    data: Path,
    backbone: str,
    image_size: int,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    out: Path,
    time_budget: float | None,
    init_from: Path | None,
    steps_per_epoch: int | None,
    float32_weights: bool,
    export_only: bool,
    no_recompute_bn: bool,
    rescale_augment: float,
) -> None:
    """Train a detector (resumable), calibrate it on validation and write an artifact."""
    from modscan.training.augment import Augmentation
    from modscan.training.run import run_training
    from modscan.training.trainer import TrainConfig

    config = TrainConfig(
        augmentation=Augmentation(rescale_probability=rescale_augment),
        backbone=backbone,
        image_size=image_size,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        time_budget_s=time_budget * 60 if time_budget else None,
        steps_per_epoch=steps_per_epoch,
    )
    try:
        run_training(
            load_settings(),
            data,
            out,
            config,
            echo=lambda line: click.echo(line, err=False),
            init_from=init_from,
            float16=not float32_weights,
            export_only=export_only,
            recompute_bn=not no_recompute_bn,
        )
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.option(
    "--model",
    "model_path",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Model artifact folder. Default: the one scans use.",
)
@click.option(
    "--data",
    type=click.Path(exists=True, path_type=Path),
    required=True,
    help="A labelled set (REAL/ and FAKE/ folders, or a .tar.gz), or a dataset folder.",
)
@click.option("--split", default="val", show_default=True, help="Split to use in a dataset folder.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--limit", type=int, default=None, help="Evaluate a stratified sample of N images.")
@click.option(
    "--report",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write a report folder (tables, JSON, plots) here.",
)
@click.option("--no-robustness", is_flag=True, help="Skip the re-encoded, rescaled, flipped sets.")
@click.option(
    "--update-card", is_flag=True, help="Record these figures in the artifact's card.json."
)
def evaluate(
    model_path: Path | None,
    data: Path,
    split: str,
    as_json: bool,
    limit: int | None,
    report: Path | None,
    no_robustness: bool,
    update_card: bool,
) -> None:
    """Measure a model on labelled images: metrics, robustness, calibration and plots."""
    from modscan.evaluation.run import run_evaluation

    try:
        run_evaluation(
            load_settings(),
            model_path,
            data,
            split=split,
            as_json=as_json,
            limit=limit,
            report=report,
            robustness=not no_robustness,
            update_card=update_card,
            echo=click.echo,
        )
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo"),
    show_default=True,
)
@click.option("--count", type=int, default=200, show_default=True)
def demo(folder: Path, count: int) -> None:
    """Prepare demo images (plus a few broken files) and scan them in embedded mode."""
    from modscan.demo import prepare_demo_images

    started = time.perf_counter()
    made = prepare_demo_images(folder, count=count)
    click.echo(f"prepared {made} demo files in {folder}/ ({time.perf_counter() - started:.1f}s)")
    settings = load_settings()
    if not settings.embedded:
        raise click.ClickException("the demo runs in embedded mode: unset MODSCAN_BROKER_URL")
    ready_database(settings)
    from modscan.embedded_cli import embedded_scan, print_verdicts
    from workers.artifact import read_card
    from workers.model import ensure_artifact

    scan_id = embedded_scan(settings, str(folder))
    card = read_card(ensure_artifact(settings))
    shown = print_verdicts(
        settings,
        scan_id,
        "/photos/",
        "Real photographs (scikit-image's public-domain samples): each should read 'real'",
        card.uncertain_band,
    )
    if not shown:
        click.echo("(install scikit-image to add real sample photographs to the demo)")


def _add_moderation_commands() -> None:
    from modscan.moderation_cli import audit, keys, policy, rescan

    for command in (keys, audit, policy, rescan):
        main.add_command(command)


_add_moderation_commands()

if __name__ == "__main__":
    main()
