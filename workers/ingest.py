"""Queue ingest: consume S3 event notifications (or modscan's own messages) from SQS.

Each message is normalised by workers.events, registered idempotently (a duplicate event
maps to the same source and the same scan item, so it adds nothing), handed to dispatch
after commit, and only then deleted from the queue: delivery stays at-least-once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from db.items import SourceRecord, WorkItem, register_sources
from db.models import Scan
from db.scans import get_or_create_stream_scan
from db.session import session_scope
from modscan.settings import Settings
from workers.events import InvalidMessage, SourceRef, parse_message
from workers.sources import s3_record

log = logging.getLogger(__name__)

Dispatch = Callable[[int, Sequence[WorkItem]], None]


@dataclass
class IngestStats:
    messages: int = 0
    refs: int = 0
    dispatched: int = 0
    invalid: int = 0


def sqs_client(settings: Settings) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "sqs",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.aws_region,
        config=Config(retries={"mode": "standard", "total_max_attempts": 5}),
    )


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


def consume_sqs(
    settings: Settings,
    queue_url: str,
    dispatch: Dispatch,
    *,
    max_messages: int | None = None,
    idle_timeout_s: float | None = None,
    wait_time_s: int = 5,
) -> IngestStats:
    """Long-poll the queue until max_messages were handled or it stayed idle too long."""
    client = sqs_client(settings)
    with session_scope(settings.resolved_database_url) as session:
        stream_scan_id = get_or_create_stream_scan(session, f"sqs:{queue_url}").id
    stats = IngestStats()
    idle_since = time.monotonic()
    while max_messages is None or stats.messages < max_messages:
        response = client.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_time_s
        )
        messages = response.get("Messages", [])
        if not messages:
            if idle_timeout_s is not None and time.monotonic() - idle_since > idle_timeout_s:
                break
            continue
        idle_since = time.monotonic()
        refs: list[SourceRef] = []
        handled: list[dict[str, str]] = []
        for message in messages:
            stats.messages += 1
            try:
                refs.extend(parse_message(message["Body"]))
            except InvalidMessage as exc:
                # A message that can never parse would loop forever: log it with its
                # body and drop it.
                stats.invalid += 1
                log.error(
                    "dropping invalid message %s: %s; body: %.500s",
                    message.get("MessageId"),
                    exc,
                    message.get("Body"),
                )
            handled.append({"Id": str(len(handled)), "ReceiptHandle": message["ReceiptHandle"]})
        stats.refs += len(refs)
        stats.dispatched += ingest_refs(
            settings, refs, stream_scan_id=stream_scan_id, dispatch=dispatch
        )
        client.delete_message_batch(QueueUrl=queue_url, Entries=handled)
    return stats
