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
from workers.listing import run_listing
from workers.sources import parse_source

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (items finished just now, items listed so far)
Dispatch = Callable[[int, Sequence[WorkItem]], None]
Lister = Callable[[Settings, int, Dispatch], object]  # registers a scan's items, dispatching


def create_embedded_scan(settings: Settings, source: str, *, actor: str | None = None) -> int:
    parsed = parse_source(source, allow_local=True)
    with session_scope(settings.resolved_database_url) as session:
        return create_scan(session, source_uri=parsed.uri, kind=parsed.kind, created_by=actor).id


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
    settings = ctx.settings
    executor = ThreadPoolExecutor(settings.worker_concurrency, thread_name_prefix="modscan-task")
    futures: dict[Future[ClassifyResult], list[int]] = {}
    listed = 0

    def dispatch(_scan_id: int, items: Sequence[WorkItem]) -> None:
        nonlocal listed
        ids = [item.item_id for item in items]
        listed += len(ids)
        futures[executor.submit(classify_items, ctx, ids)] = ids

    try:
        lister(settings, scan_id, dispatch)
        round_ = 0
        while futures:
            done, _ = wait(list(futures))
            retry: list[int] = []
            for future in done:
                ids = futures.pop(future)
                result = future.result()
                retry.extend(result.retry_item_ids)
                if progress:
                    progress(len(ids) - len(result.retry_item_ids), listed)
            if retry:
                round_ += 1
                delay = min(2.0**round_, 30.0)
                log.warning("%d items failed transiently; retrying in %.0fs", len(retry), delay)
                time.sleep(delay)
                for start in range(0, len(retry), settings.chunk_size):
                    chunk = retry[start : start + settings.chunk_size]
                    futures[executor.submit(classify_items, ctx, chunk)] = chunk
    finally:
        executor.shutdown(wait=True)
