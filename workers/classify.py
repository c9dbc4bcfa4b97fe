"""Classifying a chunk of scan items: claim, fetch, decode, batch, record.

Plain functions over a WorkerContext, shared by the Celery task and the embedded mode.
An item that was already delivered once (attempts > 0) may be the one that killed a worker,
so such items are processed one at a time, each counted and committed on its own: a poison
image then reaches the dead-letter state alone instead of taking its neighbours with it.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from db.items import WorkItem, claim_items, note_retry_reasons, pending_items, release_claims
from db.models import ErrorReason
from db.session import session_scope
from db.verdicts import ImageFacts
from workers.classifier.decode import DecodeLimits, ImageError, decode_image
from workers.context import WorkerContext
from workers.engine import Prepared
from workers.fetch import SourceMissing, TransientFetchError
from workers.transient import is_transient

log = logging.getLogger(__name__)


class RunInterrupted(Exception):
    """A run cut short by a database or broker outage (its cause). ``claim_token`` names
    the delivery holding the items, for the retry to take over without counting."""

    def __init__(self, claim_token: str | None) -> None:
        super().__init__("interrupted by a transient failure")
        self.claim_token = claim_token


@dataclass
class ClassifyResult:
    claim_token: str = ""  # this run's delivery token (db.items.claim_items)
    claimed: bool = False  # whether this run's first claim committed
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


def _suspect(item: WorkItem, previous: str | None) -> bool:
    """Delivered before, and not by the run this one retries: it may be what killed it."""
    return item.attempts > 0 and (previous is None or item.claim_token != previous)


def classify_items(
    ctx: WorkerContext, item_ids: Sequence[int], *, previous: str | None = None
) -> ClassifyResult:
    """Process the still-pending items among item_ids; return those to retry later.

    ``previous`` names the run this one retries after a transient failure: its claims
    are taken over without counting another attempt (see ``db.items.claim_items``).
    ``ClassifyResult.claim_token`` is this run's, for the next retry to name.
    """
    token = uuid.uuid4().hex
    result = ClassifyResult(claim_token=token)
    try:
        _classify(ctx, item_ids, previous, result)
    except Exception as exc:
        # The claims this run holds: its own once the first claim committed, else the
        # previous run's still (nothing of this run reached the database).
        holder = token if result.claimed else previous
        if is_transient(exc):
            raise RunInterrupted(holder) from exc
        if holder is not None:
            _release(ctx, item_ids, holder)
        raise
    return result


def _release(ctx: WorkerContext, item_ids: Sequence[int], token: str) -> None:
    """After an unexpected error, let the next delivery claim (and count) the items now."""
    try:
        with session_scope(ctx.database_url) as session:
            release_claims(session, item_ids, token=token)
    except Exception:
        log.exception("could not release the claims of %d items", len(item_ids))


def _classify(
    ctx: WorkerContext, item_ids: Sequence[int], previous: str | None, result: ClassifyResult
) -> None:
    url = ctx.database_url
    claim = functools.partial(
        claim_items,
        token=result.claim_token,
        lease_s=ctx.settings.claim_lease_s,
        max_attempts=ctx.settings.max_attempts,
        previous=previous,
    )
    with session_scope(url) as session:
        items = pending_items(session, item_ids=item_ids)
        fresh = claim(session, [i for i in items if not _suspect(i, previous)])
    result.claimed = True
    suspects = [i for i in items if _suspect(i, previous)]
    if fresh:
        _run(ctx, fresh, result)
    for item in suspects:
        with session_scope(url) as session:
            alive = claim(session, [item])
        if alive:
            _run(ctx, alive, result)
    # Safety net: anything the batch could not finalise (a transient fetch error, a batch
    # that did not finish) goes back for another try, with the reason kept on the item so a
    # later dead-letter row still says why. Items another live delivery holds are its own.
    # Their claims end here, so the next delivery claims them at once, and counts it: a
    # fetch that keeps failing (an object S3 always throttles) is about the item, and
    # dead-letters after max_attempts. Outages of the database or broker never get here.
    with session_scope(url) as session:
        note_retry_reasons(session, result.last_errors)
        leftover = {
            i.item_id
            for i in pending_items(session, item_ids=item_ids)
            if i.claim_token == result.claim_token
        }
        release_claims(session, sorted(leftover), token=result.claim_token)
    result.retry_item_ids = sorted(leftover | set(result.retry_item_ids))
