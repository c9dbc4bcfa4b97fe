"""The attempts counter: an item whose deliveries keep dying ends dead, alone.

A worker killed mid-batch leaves its items' attempts counted in the database. These tests
set up that state for real (attempts written by earlier, unfinished deliveries) and run the
classify service on it.
"""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from sqlalchemy import update

from db.items import SourceRecord, register_sources
from db.models import ScanItem
from db.scans import create_scan
from db.session import session_scope
from modscan.settings import Settings
from tests.integration.helpers import items_by_key
from tests.support.images import jpeg_bytes

pytestmark = pytest.mark.integration


@pytest.mark.slow(seconds=20)
def test_suspects_are_processed_alone_and_poison_is_dead_lettered(
    pg_url: str, moto_endpoint: str, small_model: Path
) -> None:
    from workers.classify import classify_items
    from workers.context import WorkerContext

    settings = Settings(
        database_url=pg_url,
        s3_endpoint_url=moto_endpoint,
        model_path=small_model,
        max_batch=16,
        batch_sizes=[4],
        max_attempts=3,
    )
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="poison")
    keys = [f"p/{i}.jpg" for i in range(6)]
    for i, key in enumerate(keys):
        s3.put_object(Bucket="poison", Key=key, Body=jpeg_bytes(700 + i))
    with session_scope(pg_url) as session:
        scan_id = create_scan(session, source_uri="s3://poison/p/", kind="prefix").id
        records = [SourceRecord("s3", "poison", key, version=key) for key in keys]
        ids = [item.item_id for item in register_sources(session, scan_id, records)]
        # Earlier deliveries died: p/0 three times (the poison), p/1..p/2 once, the rest never.
        session.execute(update(ScanItem).where(ScanItem.id == ids[0]).values(attempts=3))
        session.execute(update(ScanItem).where(ScanItem.id.in_(ids[1:3])).values(attempts=1))

    ctx = WorkerContext(settings)
    try:
        ctx.engine.wait_ready()
        result = classify_items(ctx, ids)
        engine_batches = ctx.engine.stats.batches
    finally:
        ctx.close()

    assert result.retry_item_ids == []
    items = items_by_key(pg_url, scan_id)
    assert (items["p/0.jpg"].status, items["p/0.jpg"].error_reason) == ("dead", "max_attempts")
    assert all(items[key].status == "scored" for key in keys[1:])
    assert [items[key].attempts for key in keys] == [3, 2, 2, 1, 1, 1]
    # Fresh items went as one batch; each suspect went on its own.
    assert engine_batches == 1 + 2
