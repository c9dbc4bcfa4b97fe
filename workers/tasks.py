"""Celery tasks: thin wrappers over the listing and classify services."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
from celery.signals import worker_ready
from sqlalchemy.exc import InterfaceError, OperationalError

from modscan.settings import get_settings
from workers.celery_app import CLASSIFY_TASK, INFERENCE_QUEUE, LIST_TASK, app
from workers.classify import classify_items
from workers.context import get_context
from workers.dispatch import Enqueuer
from workers.fetch import TransientFetchError
from workers.listing import run_listing

log = logging.getLogger(__name__)


@app.task(
    name=LIST_TASK,
    bind=True,
    acks_late=True,
    ignore_result=True,
    # A redelivered listing resumes from the scan's cursor, so retrying is cheap.
    autoretry_for=(TransientFetchError, ConnectionError, OperationalError, InterfaceError),
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=8,
)
def list_source(self: Task, scan_id: int) -> None:
    settings = get_settings()
    run_listing(settings, scan_id, Enqueuer(settings))


@app.task(name=CLASSIFY_TASK, bind=True, acks_late=True, ignore_result=True)
def classify(self: Task, scan_id: int, items: list[dict[str, Any]]) -> None:
    settings = get_settings()
    backoff = min(2 ** (self.request.retries or 0), 60)
    try:
        result = classify_items(get_context(settings), [int(item["item_id"]) for item in items])
    except Exception as exc:
        # Database outages, a failed batch write, a batch that timed out: try again later.
        # Items already written stay written; each item's attempts counter bounds the loop.
        log.warning(
            "scan %s: classify failed (%s: %s); retrying in %ss",
            scan_id,
            type(exc).__name__,
            exc,
            backoff,
        )
        raise self.retry(exc=exc, countdown=backoff, max_retries=None) from exc
    if result.retry_item_ids:
        retry = [item for item in items if int(item["item_id"]) in set(result.retry_item_ids)]
        countdown = backoff
        log.warning(
            "scan %s: %d items to retry in %ss (%s)",
            scan_id,
            len(retry),
            countdown,
            "; ".join(list(result.last_errors.values())[:3]) or "unfinished",
        )
        # The attempts counter on each item bounds this loop (dead-letter after max_attempts).
        raise self.retry(
            kwargs={"scan_id": scan_id, "items": retry}, countdown=countdown, max_retries=None
        )


@worker_ready.connect
def _warm_up(sender: Any = None, **_: Any) -> None:
    """Load and warm the model as the worker starts, in the process that will use it."""
    pool = getattr(sender, "pool", None)
    if pool is not None and "prefork" in type(pool).__module__:
        return  # never load TensorFlow in a parent that forks; children load lazily
    consumer = getattr(sender, "task_consumer", None)
    queues = {queue.name for queue in getattr(consumer, "queues", [])}
    if queues and INFERENCE_QUEUE not in queues:
        log.info("modscan worker ready for %s: no inference queue, no model loaded", sorted(queues))
        return
    context = get_context(get_settings())
    context.engine.wait_ready()
    if not context.card.trained:
        log.warning(
            "scoring with an UNTRAINED model (%s %s): its scores are meaningless; point "
            "MODSCAN_MODEL_PATH at a trained model artifact",
            context.card.name,
            context.card.version,
        )
    log.info("modscan worker ready: model %s %s", context.card.name, context.card.version)
