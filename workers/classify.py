"""Classifying a chunk of scan items: claim, fetch, decode, batch, record.

Plain functions over a WorkerContext, shared by the Celery task and the embedded mode.
An item that was already delivered once (attempts > 0) may be the one that killed a worker,
so such items are processed one at a time, each counted and committed on its own: a poison
image then reaches the dead-letter state alone instead of taking its neighbours with it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from db.items import WorkItem, add_attempt, note_retry_reasons, pending_items
from db.models import ErrorReason
from db.session import session_scope
from db.verdicts import ImageFacts
from workers.classifier.decode import DecodeLimits, ImageError, decode_image
from workers.context import WorkerContext
from workers.engine import Prepared
from workers.fetch import SourceMissing, TransientFetchError

log = logging.getLogger(__name__)


@dataclass
class ClassifyResult:
    retry_item_ids: list[int] = field(default_factory=list)
    last_errors: dict[int, str] = field(default_factory=dict)  # item id → transient error


def prepare(ctx: WorkerContext, item: WorkItem) -> Prepared:
    """Fetch and decode one item; every bad input becomes a per-item error."""
    prepared = Prepared(item_id=item.item_id, scan_id=item.scan_id)
    try:
        data = ctx.fetcher.fetch(item.scheme, item.bucket, item.key, item.version_id)
        sha = hashlib.sha256(data).hexdigest()
        limits = DecodeLimits(
            max_bytes=ctx.settings.max_bytes,
            max_pixels=ctx.settings.max_pixels,
            max_frames=ctx.settings.max_frames,
        )
        decoded = decode_image(data, size=ctx.input_size, limits=limits, resize=ctx.card.resize)
    except ImageError as exc:
        prepared.error_reason, prepared.error_detail = exc.reason, exc.detail
        return prepared
    except SourceMissing as exc:
        prepared.error_reason, prepared.error_detail = ErrorReason.SOURCE_MISSING, str(exc)
        return prepared
    prepared.pixels = decoded.pixels
    prepared.image = ImageFacts(
        sha256=sha,
        size_bytes=len(data),
        width=decoded.width,
        height=decoded.height,
        format=decoded.format,
    )
    return prepared


def _prepare_all(
    ctx: WorkerContext, items: Sequence[WorkItem], result: ClassifyResult
) -> list[Prepared]:
    futures = [(item, ctx.pool.submit(prepare, ctx, item)) for item in items]
    ready: list[Prepared] = []
    for item, future in futures:
        try:
            ready.append(future.result())
        except TransientFetchError as exc:
            result.retry_item_ids.append(item.item_id)
            result.last_errors[item.item_id] = str(exc)
    return ready


def _run(ctx: WorkerContext, items: Sequence[WorkItem], result: ClassifyResult) -> None:
    prepared = _prepare_all(ctx, items, result)
    ctx.engine.submit(prepared).result(timeout=ctx.settings.batch_timeout_s)


def classify_items(ctx: WorkerContext, item_ids: Sequence[int]) -> ClassifyResult:
    """Process the still-pending items among item_ids; return those to retry later."""
    result = ClassifyResult()
    url = ctx.database_url
    max_attempts = ctx.settings.max_attempts
    with session_scope(url) as session:
        items = pending_items(session, item_ids=item_ids)
        fresh = add_attempt(session, [i for i in items if i.attempts == 0], max_attempts)
    suspects = [i for i in items if i.attempts > 0]
    if fresh:
        _run(ctx, fresh, result)
    for item in suspects:
        with session_scope(url) as session:
            alive = add_attempt(session, [item], max_attempts)
        if alive:
            _run(ctx, alive, result)
    # Safety net: anything the batch could not finalise goes back for another try,
    # with the reason kept on the item so a later dead-letter row still says why.
    with session_scope(url) as session:
        note_retry_reasons(session, result.last_errors)
        leftover = {i.item_id for i in pending_items(session, item_ids=item_ids)}
    result.retry_item_ids = sorted(leftover | set(result.retry_item_ids))
    return result
