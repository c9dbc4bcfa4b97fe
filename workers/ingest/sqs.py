"""Queue ingest: consume S3 event notifications (or modscan's own messages) from SQS.

Each message is normalised by ``workers.ingest.messages``, registered idempotently by
``workers.ingest.register``, handed to dispatch after commit, and only then deleted from the
queue: delivery stays at-least-once.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from modscan.settings import Settings
from workers.dispatch import Dispatch
from workers.ingest.messages import InvalidMessage, SourceRef, parse_message
from workers.ingest.register import IngestStats, ingest_refs, stream_scan_id

log = logging.getLogger(__name__)


def sqs_client(settings: Settings) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "sqs",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.aws_region,
        config=Config(retries={"mode": "standard", "total_max_attempts": 5}),
    )


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
    stream_scan = stream_scan_id(settings, f"sqs:{queue_url}")
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
            settings, refs, stream_scan_id=stream_scan, dispatch=dispatch
        )
        client.delete_message_batch(QueueUrl=queue_url, Entries=handled)
    return stats
