"""Reconciliation: hand out again the work a broker lost.

Redis without AOF forgets queued tasks on restart, a listing task can be lost the same way,
and a task gives up once an outage outlasts its retry horizon. Items still pending that no
live delivery holds, and scans still listing, that nothing has touched for a while are
enqueued again, and marked as touched so the next pass leaves them a while. Running this
twice is harmless: claims keep two deliveries off one item and every write downstream is
idempotent. ``modscan requeue`` runs it once; the workers' sweep (``workers.sweep``) runs it
periodically.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from db.items import WorkItem, stale_pending_items, touch_items
from db.models import utcnow
from db.scans import stale_listings, touch_scans
from db.session import session_scope
from modscan.settings import Settings
from workers.dispatch import Dispatch, chunked, enqueue_listing


@dataclass
class RequeueStats:
    scans: int = 0
    items: int = 0


def requeue_stale(
    settings: Settings, dispatch: Dispatch, *, older_than_s: float, limit: int = 10_000
) -> RequeueStats:
    assert settings.broker_url, "requeue needs a broker"
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    stats = RequeueStats()
    with session_scope(settings.resolved_database_url) as session:
        stale_scans = stale_listings(session, untouched_since=cutoff)
        items = stale_pending_items(session, untouched_since=cutoff, limit=limit)
        # Touched before they are sent: a pass that dies halfway loses nothing, since
        # the next one after this interval finds them again.
        touch_scans(session, stale_scans)
        touch_items(session, [item.item_id for item in items])
    for scan_id in stale_scans:
        enqueue_listing(settings.broker_url, scan_id)
        stats.scans += 1
    by_scan: dict[int, list[WorkItem]] = {}
    for item in items:
        by_scan.setdefault(item.scan_id, []).append(item)
    for scan_id, scan_items in by_scan.items():
        for chunk in chunked(scan_items, settings.chunk_size):
            dispatch(scan_id, chunk)
            stats.items += len(chunk)
    return stats
