"""A listing of several pages, interrupted between pages and resumed: nothing listed twice,
nothing missed, every item handed out."""

from __future__ import annotations

from collections.abc import Sequence

import boto3
import pytest
from sqlalchemy import func, select

from db.items import WorkItem
from db.models import Scan, ScanItem
from db.session import session_scope
from modscan.settings import Settings

pytestmark = pytest.mark.integration


class Crash(Exception):
    """The process dying between two pages."""


def test_listing_interrupted_between_pages_resumes_after_its_cursor(
    pg_url: str, moto_endpoint: str
) -> None:
    from workers.listing import PAGE_SIZES, run_listing
    from workers.sources import parse_source

    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="paged")
    total = PAGE_SIZES[0] + PAGE_SIZES[1] + 50  # three pages: the second by ContinuationToken
    for i in range(total):
        s3.put_object(Bucket="paged", Key=f"p/{i:05d}.jpg", Body=b"x")
    settings = Settings(database_url=pg_url, s3_endpoint_url=moto_endpoint, chunk_size=64)
    source = parse_source("s3://paged/p/")
    with session_scope(pg_url) as session:
        scan = Scan(source_uri=source.uri, kind=source.kind, status="listing")
        session.add(scan)
        session.flush()
        scan_id = scan.id

    first_run: list[int] = []

    def dies_after_two_pages(_scan_id: int, items: Sequence[WorkItem]) -> None:
        first_run.extend(item.item_id for item in items)
        if len(first_run) >= PAGE_SIZES[0] + PAGE_SIZES[1]:
            raise Crash  # pages 1 and 2 registered and handed out; page 3 never listed

    with pytest.raises(Crash):
        run_listing(settings, scan_id, dies_after_two_pages)
    with session_scope(pg_url) as session:
        cursor = session.get(Scan, scan_id).list_cursor  # type: ignore[union-attr]
        registered = session.scalar(select(func.count()).where(ScanItem.scan_id == scan_id))
    assert cursor == f"p/{PAGE_SIZES[0] + PAGE_SIZES[1] - 1:05d}.jpg"
    assert registered == PAGE_SIZES[0] + PAGE_SIZES[1]

    second_run: list[int] = []
    listed = run_listing(
        settings, scan_id, lambda _s, items: second_run.extend(i.item_id for i in items)
    )
    with session_scope(pg_url) as session:
        done = session.get(Scan, scan_id)
        assert done is not None
        keys = session.scalars(
            select(func.count(func.distinct(ScanItem.source_id))).where(ScanItem.scan_id == scan_id)
        ).one()
        assert (done.listing_done, done.listed) == (True, total)
    assert keys == total
    assert listed == 50  # only the page after the cursor was listed again
    # The resumed run hands out everything still pending, the earlier pages included:
    # the dead process may never have dispatched them.
    assert set(first_run) <= set(second_run)
    assert len(set(second_run)) == total
