"""Redis restarted without persistence loses queued work; `requeue` recovers it."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
import redis

from modscan.settings import Settings
from tests.integration.helpers import assert_scan_outcome, fill_bucket, wait_for_scan
from tests.support.services import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.slow(seconds=22)
def test_lost_queue_is_recovered(
    pg_url: str, redis_url: str, moto_endpoint: str, small_model: Path, tmp_path: Path
) -> None:
    from workers.dispatch import Enqueuer, start_scan
    from workers.listing import run_listing
    from workers.requeue import requeue_stale

    settings = Settings(
        database_url=pg_url,
        broker_url=redis_url,
        s3_endpoint_url=moto_endpoint,
        model_path=small_model,
        chunk_size=8,
    )
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    contents = fill_bucket(s3, "requeue", images=12, duplicates=2)
    broker = redis.Redis.from_url(redis_url)

    # A scan whose listing task is lost, and one whose classify tasks are lost.
    lost_listing = start_scan(settings, f"s3://requeue/{contents.prefix}")
    listed = start_scan(settings, f"s3://requeue/{contents.prefix}")
    broker.flushdb()
    run_listing(settings, listed, Enqueuer(settings))
    broker.flushdb()  # "restart": every queued task is gone
    assert broker.llen("listing") == 0 and broker.llen("inference") == 0

    stats = requeue_stale(settings, Enqueuer(settings), older_than_s=0)
    assert stats.scans == 1
    assert stats.items == len(contents.good) + len(contents.bad)

    worker = WorkerProcess(
        {
            "MODSCAN_DATABASE_URL": pg_url,
            "MODSCAN_BROKER_URL": redis_url,
            "MODSCAN_S3_ENDPOINT_URL": moto_endpoint,
            "MODSCAN_MODEL_PATH": str(small_model),
            "MODSCAN_MAX_BATCH": "16",
            "MODSCAN_BATCH_SIZES": "[4]",
        },
        tmp_path / "worker.log",
        queues="listing,inference",
    )
    try:
        worker.wait_ready()
        assert wait_for_scan(pg_url, listed).status == "completed"
        assert wait_for_scan(pg_url, lost_listing).status == "completed"
    finally:
        worker.stop()
    assert_scan_outcome(pg_url, listed, contents)
