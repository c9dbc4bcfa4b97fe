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
from workers.classify import ClassifyResult, classify_items
from workers.context import WorkerContext
from workers.dispatch import Dispatch
from workers.listing import run_listing
from workers.sources import parse_source

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (items finished just now, items listed so far)
Lister = Callable[[Settings, int, Dispatch], object]  # registers a scan's items, dispatching


def create_embedded_scan(settings: Settings, source: str, *, actor: str | None = None) -> int:
    parsed = parse_source(source, allow_local=True)
    with session_scope(settings.resolved_database_url) as session:
        return create_scan(session, source_uri=parsed.uri, kind=parsed.kind, created_by=actor).id


class EmbeddedDispatch:
    """The embedded mode's dispatch: classify each chunk on a thread pool in this process.

    :meth:`finish` waits for every chunk and retries what failed transiently, with backoff,
    until nothing is left; the items' attempts counters bound the loop, as in the workers.
    """

    def __init__(self, ctx: WorkerContext, *, progress: Progress | None = None) -> None:
        self.ctx = ctx
        self.progress = progress
        self.listed = 0
        self._executor = ThreadPoolExecutor(
            ctx.settings.worker_concurrency, thread_name_prefix="modscan-task"
        )
        self._futures: dict[Future[ClassifyResult], list[int]] = {}

    def __call__(self, _scan_id: int, items: Sequence[WorkItem]) -> None:
        ids = [item.item_id for item in items]
        self.listed += len(ids)
        self._submit(ids)

    def _submit(self, ids: list[int]) -> None:
        self._futures[self._executor.submit(classify_items, self.ctx, ids)] = ids

    def finish(self) -> None:
        """Wait until every dispatched item is finished, retrying transient failures."""
        round_ = 0
        chunk_size = self.ctx.settings.chunk_size
        while self._futures:
            done, _ = wait(list(self._futures))
            retry: list[int] = []
            for future in done:
                ids = self._futures.pop(future)
                result = future.result()
                retry.extend(result.retry_item_ids)
                if self.progress:
                    self.progress(len(ids) - len(result.retry_item_ids), self.listed)
            if retry:
                round_ += 1
                delay = min(2.0**round_, 30.0)
                log.warning("%d items failed transiently; retrying in %.0fs", len(retry), delay)
                time.sleep(delay)
                for start in range(0, len(retry), chunk_size):
                    self._submit(retry[start : start + chunk_size])

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

    ``lister`` registers the scan's items and dispatches them (default: list its source).
    """
    dispatch = EmbeddedDispatch(ctx, progress=progress)
    try:
        lister(ctx.settings, scan_id, dispatch)
        dispatch.finish()
    finally:
        dispatch.close()
