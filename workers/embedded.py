"""Embedded mode: the same listing, classify and batching code, run in this process."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait

from db.items import WorkItem
from db.scans import create_scan
from db.session import session_scope
from modscan.settings import Settings
from workers.classify import ClassifyResult, RunInterrupted, classify_items
from workers.context import WorkerContext
from workers.dispatch import Dispatch
from workers.listing import run_listing
from workers.sources import parse_source
from workers.transient import OUTAGE, backoff_s, call_retrying

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (items finished just now, items listed so far)
Lister = Callable[[Settings, int, Dispatch], object]  # registers a scan's items, dispatching


def create_embedded_scan(settings: Settings, source: str, *, actor: str | None = None) -> int:
    parsed = parse_source(source, allow_local=True)

    def create() -> int:
        with session_scope(settings.resolved_database_url) as session:
            return create_scan(
                session, source_uri=parsed.uri, kind=parsed.kind, created_by=actor
            ).id

    return call_retrying(create, settings, what="creating the scan")


class EmbeddedDispatch:
    """The embedded mode's dispatch: classify each chunk on a thread pool in this process.

    :meth:`finish` waits for every chunk and retries, with backoff, what did not finish:
    chunks cut short by a database outage (a SQLite file another process holds locked) for
    up to ``MODSCAN_TRANSIENT_RETRY_S``, taking their claims over uncounted; and items whose
    fetch failed, as new, counted deliveries that the attempts counters bound, as in the
    workers.
    """

    def __init__(self, ctx: WorkerContext, *, progress: Progress | None = None) -> None:
        self.ctx = ctx
        self.progress = progress
        self.listed = 0
        self._executor = ThreadPoolExecutor(
            ctx.settings.worker_concurrency, thread_name_prefix="modscan-task"
        )
        self._futures: dict[Future[ClassifyResult], tuple[list[int], str | None]] = {}

    def __call__(self, _scan_id: int, items: Sequence[WorkItem]) -> None:
        ids = [item.item_id for item in items]
        self.listed += len(ids)
        self._submit(ids, None)

    def _submit(self, ids: list[int], previous: str | None) -> None:
        future = self._executor.submit(classify_items, self.ctx, ids, previous=previous)
        self._futures[future] = (ids, previous)

    def finish(self) -> None:
        """Wait until every dispatched item is finished, retrying transient failures."""
        settings = self.ctx.settings
        round_ = 0
        failing_since: float | None = None
        while self._futures:
            done, _ = wait(list(self._futures))
            retry: list[tuple[list[int], str | None]] = []
            for future in done:
                ids, previous = self._futures.pop(future)
                try:
                    result = future.result()
                except RunInterrupted as exc:
                    failing_since = failing_since or time.monotonic()
                    if time.monotonic() - failing_since > settings.transient_retry_s:
                        raise
                    OUTAGE.failed(exc.__cause__ or exc, retry_s=settings.transient_retry_s)
                    retry.append((ids, exc.claim_token))
                    continue
                OUTAGE.succeeded()
                if result.retry_item_ids:
                    retry.append((result.retry_item_ids, None))  # counted, as in the workers
                if self.progress:
                    self.progress(len(ids) - len(result.retry_item_ids), self.listed)
            if retry:
                delay = backoff_s(round_, cap_s=settings.transient_backoff_max_s)
                round_ += 1
                waiting = sum(len(ids) for ids, _ in retry)
                log.warning("%d items failed transiently; retrying in %.0fs", waiting, delay)
                time.sleep(delay)
                for ids, previous in retry:
                    for start in range(0, len(ids), settings.chunk_size):
                        self._submit(ids[start : start + settings.chunk_size], previous)

    def close(self) -> None:
        self._executor.shutdown(wait=True)


def run_embedded_scan(
    ctx: WorkerContext,
    scan_id: int,
    *,
    progress: Progress | None = None,
    lister: Lister = run_listing,
) -> None:
    """List and classify a scan to the end in this process, retrying transient failures.

    ``lister`` registers the scan's items and dispatches them (default: list its source);
    a listing cut short by an outage resumes from the scan's cursor.
    """
    dispatch = EmbeddedDispatch(ctx, progress=progress)
    try:
        call_retrying(lambda: lister(ctx.settings, scan_id, dispatch), ctx.settings, what="listing")
        dispatch.finish()
    finally:
        dispatch.close()
