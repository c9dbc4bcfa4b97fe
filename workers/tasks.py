"""Celery tasks: thin wrappers over the listing and classify services."""

from __future__ import annotations

import logging
import time
from typing import Any, NoReturn

from celery import Task
from celery.exceptions import Reject
from celery.signals import worker_ready

from modscan.settings import get_settings
from workers.celery_app import CLASSIFY_TASK, INFERENCE_QUEUE, LIST_TASK, app
from workers.classify import RunInterrupted, classify_items
from workers.context import get_context
from workers.dispatch import Enqueuer
from workers.fetch import TransientFetchError
from workers.listing import run_listing
from workers.sweep import Sweeper
from workers.transient import OUTAGE, backoff_s, is_transient

log = logging.getLogger(__name__)


def _transient_retry(
    task: Task, exc: BaseException, *, since: float | None, what: str, **kwargs: Any
) -> NoReturn:
    """Retry after a transient failure: backoff with jitter, for up to the horizon.

    Past the horizon the task gives up and is acked; its items stay pending and the sweep
    hands them out again once the outage is over. Nothing is counted against them.
    """
    settings = get_settings()
    first = since if since is not None else time.time()
    OUTAGE.failed(exc, retry_s=settings.transient_retry_s)
    if time.time() - first > settings.transient_retry_s:
        log.error(
            "%s: still failing after %.0fs of retries (%s); leaving it to the sweep",
            what,
            time.time() - first,
            type(exc).__name__,
        )
        raise Reject(exc, requeue=False) from exc
    countdown = backoff_s(task.request.retries or 0, cap_s=settings.transient_backoff_max_s)
    log.debug("%s: %s; retrying in %.1fs", what, type(exc).__name__, countdown)
    raise task.retry(exc=exc, countdown=countdown, kwargs={**kwargs, "transient_since": first})


@app.task(name=LIST_TASK, bind=True, acks_late=True, ignore_result=True, max_retries=None)
def list_source(self: Task, scan_id: int, transient_since: float | None = None) -> None:
    """List a scan's source. A redelivered listing resumes from the scan's cursor."""
    settings = get_settings()
    try:
        run_listing(settings, scan_id, Enqueuer(settings))
    except Exception as exc:
        if not (is_transient(exc) or isinstance(exc, TransientFetchError)):
            raise
        _transient_retry(
            self, exc, since=transient_since, what=f"scan {scan_id} listing", scan_id=scan_id
        )
    OUTAGE.succeeded()


# Unexpected errors (a bug, an item that makes the batch raise) are retried this many
# times as new deliveries, each counted against the items' attempts.
UNEXPECTED_RETRIES = 3


@app.task(name=CLASSIFY_TASK, bind=True, acks_late=True, ignore_result=True, max_retries=None)
def classify(
    self: Task,
    scan_id: int,
    items: list[dict[str, Any]],
    previous: str | None = None,
    transient_since: float | None = None,
    unexpected: int = 0,
) -> None:
    settings = get_settings()
    ids = [int(item["item_id"]) for item in items]
    try:
        result = classify_items(get_context(settings), ids, previous=previous)
    except Exception as exc:
        if is_transient(exc):
            # The database or broker, not the items: the claims carry over uncounted.
            _transient_retry(
                self,
                exc,
                since=transient_since,
                what=f"scan {scan_id}: classify of {len(ids)} items",
                scan_id=scan_id,
                items=items,
                previous=exc.claim_token if isinstance(exc, RunInterrupted) else previous,
            )
        if unexpected >= UNEXPECTED_RETRIES:
            log.exception("scan %s: classify failed %d times; leaving it", scan_id, unexpected + 1)
            raise
        countdown = backoff_s(unexpected, cap_s=settings.transient_backoff_max_s)
        log.warning(
            "scan %s: classify failed (%s: %s); retrying in %.0fs",
            scan_id,
            type(exc).__name__,
            exc,
            countdown,
        )
        raise self.retry(
            exc=exc,
            countdown=countdown,
            kwargs={"scan_id": scan_id, "items": items, "unexpected": unexpected + 1},
        ) from exc
    OUTAGE.succeeded()
    if result.retry_item_ids:
        wanted = set(result.retry_item_ids)
        retry = [item for item in items if int(item["item_id"]) in wanted]
        countdown = backoff_s(self.request.retries or 0, cap_s=60.0)
        log.warning(
            "scan %s: %d items to retry in %.0fs (%s)",
            scan_id,
            len(retry),
            countdown,
            "; ".join(list(result.last_errors.values())[:3]) or "unfinished",
        )
        # A new delivery of these items, counted: each item's attempts counter bounds the
        # loop (dead-letter after max_attempts), so the task itself retries without a cap.
        raise self.retry(kwargs={"scan_id": scan_id, "items": retry}, countdown=countdown)


_sweeper: Sweeper | None = None


@worker_ready.connect
def _warm_up(sender: Any = None, **_: Any) -> None:
    """Load and warm the model as the worker starts, in the process that will use it."""
    pool = getattr(sender, "pool", None)
    if pool is not None and "prefork" in type(pool).__module__:
        return  # never load TensorFlow in a parent that forks; children load lazily
    global _sweeper
    if _sweeper is None:
        _sweeper = Sweeper(get_settings())
        _sweeper.start()
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
