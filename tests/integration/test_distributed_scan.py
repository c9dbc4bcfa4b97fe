"""The central test: an S3 prefix scanned through Redis and a real `modscan worker`
process, verdicts in PostgreSQL; then the same objects delivered twice over SQS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from modscan.settings import Settings
from tests.integration.helpers import (
    assert_scan_outcome,
    fill_bucket,
    items_by_key,
    s3_event,
    table_counts,
    wait_for_scan,
    wait_until_final,
    worker_env,
)
from tests.support.services import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow(seconds=25)]


@pytest.fixture
def stack(
    pg_url: str, redis_url: str, moto_endpoint: str, small_model: Path, tmp_path: Path
) -> Iterator[Settings]:
    env = {
        **worker_env(pg_url, redis_url, moto_endpoint, small_model),
    }
    worker = WorkerProcess(env, tmp_path / "worker.log", queues="listing,inference")
    try:
        worker.wait_ready()
        yield Settings(
            database_url=pg_url,
            broker_url=redis_url,
            s3_endpoint_url=moto_endpoint,
            model_path=small_model,
            chunk_size=8,
        )
    finally:
        worker.stop()


def s3(settings: Settings) -> Any:
    return boto3.client("s3", endpoint_url=settings.s3_endpoint_url, region_name="us-east-1")


def test_prefix_scan_through_worker(stack: Settings) -> None:
    from workers.dispatch import start_scan

    url = stack.resolved_database_url
    contents = fill_bucket(s3(stack), "central")
    scan_id = start_scan(stack, f"s3://central/{contents.prefix}")
    scan = wait_for_scan(url, scan_id)
    assert scan.status == "completed" and scan.listed == len(contents.all_keys)
    assert_scan_outcome(url, scan_id, contents)

    before = table_counts(url)
    again = start_scan(stack, f"s3://central/{contents.prefix}")
    assert wait_for_scan(url, again).status == "completed"
    assert table_counts(url) == before  # no new source, image or verdict row
    second = items_by_key(url, again)
    assert {item.status for key, item in second.items() if key in contents.good} == {"cached"}


def test_sqs_events_delivered_twice(stack: Settings) -> None:
    from db.models import Scan
    from db.session import session_scope
    from workers.dispatch import Enqueuer
    from workers.ingest.sqs import consume_sqs

    url = stack.resolved_database_url
    client = s3(stack)
    contents = fill_bucket(client, "events", images=10, duplicates=2)
    sqs = boto3.client("sqs", endpoint_url=stack.s3_endpoint_url, region_name="us-east-1")
    queue_url = sqs.create_queue(QueueName="uploads")["QueueUrl"]
    sqs.send_message(
        QueueUrl=queue_url,
        MessageBody=json.dumps(
            {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "events"}
        ),
    )
    keys = [*contents.good, *contents.bad]
    for round_ in range(2):  # every event delivered twice
        for i, key in enumerate(keys):
            head = client.head_object(Bucket="events", Key=key)
            body = s3_event(
                "events", key, head["ETag"].strip('"'), head["ContentLength"], f"{i:016X}"
            )
            sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(body))
        stats = consume_sqs(stack, queue_url, Enqueuer(stack), idle_timeout_s=1, wait_time_s=1)
        assert stats.refs == len(keys)
        assert stats.dispatched == (len(keys) if round_ == 0 else 0)

    with session_scope(url) as session:
        scan = session.query(Scan).filter_by(kind="stream").one()
        scan_id = scan.id
    wait_until_final(url, scan_id, len(keys))
    items = items_by_key(url, scan_id)
    assert sorted(items) == sorted(keys)
    for key in contents.good:
        assert items[key].verdict_id is not None
    for key, reason in contents.bad.items():
        assert items[key].error_reason == reason
    assert table_counts(url)["verdicts"] == contents.distinct_good
