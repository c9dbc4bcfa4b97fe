"""Registering the objects ingest messages name, and handing the new ones to dispatch.

Every ingest path (SQS, a Redis list, the API's webhooks) ends here: each ref is registered
idempotently under its scan, or the path's stream scan, so a duplicate event maps to the
same source and scan item and adds nothing; only new pending items are dispatched, after
the commit.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from db.items import SourceRecord, WorkItem, register_sources
from db.models import Scan
from db.scans import get_or_create_stream_scan
from db.session import session_scope
from modscan.settings import Settings
from workers.dispatch import Dispatch
from workers.ingest.messages import SourceRef
from workers.sources import s3_record

log = logging.getLogger(__name__)


@dataclass
class IngestStats:
    messages: int = 0
    refs: int = 0
    dispatched: int = 0
    invalid: int = 0


def stream_scan_id(settings: Settings, source_uri: str) -> int:
    """The id of the stream scan that objects arriving from ``source_uri`` are filed under."""
    with session_scope(settings.resolved_database_url) as session:
        return get_or_create_stream_scan(session, source_uri).id


def _record(settings: Settings, ref: SourceRef) -> SourceRecord:
    obj: dict[str, Any] = {"Key": ref.key, "Size": ref.size, "ETag": ref.etag or ""}
    if ref.version_id:
        obj["VersionId"] = ref.version_id
    return s3_record(settings, ref.bucket, obj)


def ingest_refs(
    settings: Settings, refs: Sequence[SourceRef], *, stream_scan_id: int, dispatch: Dispatch
) -> int:
    """Register refs under their scan (or the stream scan); dispatch new pending items."""
    by_scan: dict[int, list[SourceRef]] = {}
    for ref in refs:
        by_scan.setdefault(ref.scan_id or stream_scan_id, []).append(ref)
    pending: dict[int, list[WorkItem]] = {}
    with session_scope(settings.resolved_database_url) as session:
        for scan_id, scan_refs in by_scan.items():
            if session.get(Scan, scan_id) is None:
                log.warning(
                    "message names scan %s, which does not exist; using stream scan", scan_id
                )
                scan_id = stream_scan_id
            records = [_record(settings, ref) for ref in scan_refs]
            pending.setdefault(scan_id, []).extend(
                register_sources(session, scan_id, records, new_only=True)
            )
    dispatched = 0
    for scan_id, items in pending.items():
        if items:
            dispatch(scan_id, items)
            dispatched += len(items)
    return dispatched
