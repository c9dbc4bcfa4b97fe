"""Reconciliation: hand out again the work a broker lost.

Redis without AOF forgets queued tasks on restart, and a listing task can be lost the same
way. Items still pending, and scans still listing, that nothing has touched for a while are
enqueued again. Running this twice is harmless: every write downstream is idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from db.items import WorkItem, pending_items
from db.models import ItemStatus, Scan, ScanItem, ScanStatus, utcnow
from db.session import session_scope
from modscan.settings import Settings
from workers.listing import Dispatch, chunked
from workers.scans import LIST_TASK, send_task


@dataclass
class RequeueStats:
    scans: int = 0
    items: int = 0


def requeue_stale(settings: Settings, dispatch: Dispatch, *, older_than_s: float) -> RequeueStats:
    assert settings.broker_url, "requeue needs a broker"
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    stats = RequeueStats()
    with session_scope(settings.resolved_database_url) as session:
        stale_scans = session.scalars(
            select(Scan.id).where(
                Scan.listing_done.is_(False),
                Scan.kind != "stream",
                Scan.status.in_([ScanStatus.LISTING, ScanStatus.RUNNING]),
                Scan.updated_at < cutoff,
            )
        ).all()
        stale_ids = session.scalars(
            select(ScanItem.id).where(
                ScanItem.status == ItemStatus.PENDING, ScanItem.updated_at < cutoff
            )
        ).all()
        items: list[WorkItem] = pending_items(session, item_ids=stale_ids) if stale_ids else []
    for scan_id in stale_scans:
        send_task(settings.broker_url, LIST_TASK, {"scan_id": scan_id})
        stats.scans += 1
    by_scan: dict[int, list[WorkItem]] = {}
    for item in items:
        by_scan.setdefault(item.scan_id, []).append(item)
    for scan_id, scan_items in by_scan.items():
        for chunk in chunked(scan_items, settings.chunk_size):
            dispatch(scan_id, chunk)
            stats.items += len(chunk)
    return stats
