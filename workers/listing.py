"""Listing a scan's source: register every object, then hand pending items out in chunks.

Each page is registered in its own transaction and only then dispatched, so a worker never
races a row that does not exist. A redelivered listing resumes after the last committed
S3 key; registering is idempotent, so replaying a page adds nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from db.items import SourceRecord, pending_items, register_sources
from db.models import Scan, ScanStatus
from db.scans import fail_scan, finish_listing, record_listing_page
from db.session import session_scope
from modscan.settings import Settings
from workers.dispatch import Dispatch, chunked
from workers.fetch import TransientFetchError, s3_client
from workers.sources import InvalidSource, ParsedSource, file_record, parse_source, s3_record

log = logging.getLogger(__name__)

# Small first pages get the model busy sooner; later pages amortise the round trips.
PAGE_SIZES = (128, 256, 512, 1000)


def page_size(page: int) -> int:
    return PAGE_SIZES[min(page, len(PAGE_SIZES) - 1)]


def list_s3_pages(
    settings: Settings, client: Any, source: ParsedSource, *, start_after: str | None = None
) -> Iterator[tuple[list[SourceRecord], str]]:
    """Stream ListObjectsV2 pages as (records, last key): memory stays flat."""
    kwargs: dict[str, Any] = {"Bucket": source.bucket, "Prefix": source.prefix}
    if start_after:
        kwargs["StartAfter"] = start_after
    page = 0
    while True:
        response = client.list_objects_v2(**kwargs, MaxKeys=page_size(page))
        contents = response.get("Contents", [])
        if contents:
            records = [s3_record(settings, source.bucket, obj) for obj in contents]
            yield records, contents[-1]["Key"]
        if not response.get("IsTruncated"):
            return
        kwargs.pop("StartAfter", None)
        kwargs["ContinuationToken"] = response["NextContinuationToken"]
        page += 1


def list_folder_pages(
    settings: Settings, source: ParsedSource
) -> Iterator[tuple[list[SourceRecord], str]]:
    """Walk a folder recursively in a stable order, a page of files at a time."""
    page: list[SourceRecord] = []
    pages = 0
    for root, dirs, files in os.walk(source.prefix):
        dirs.sort()
        for name in sorted(files):
            record = file_record(settings, Path(root) / name)
            if record is None:
                continue
            page.append(record)
            if len(page) >= page_size(pages):
                yield page, page[-1].key
                page = []
                pages += 1
    if page:
        yield page, page[-1].key


class ListingFailed(Exception):
    """The source cannot be listed, and retrying will not change that."""


def _list_pages(settings: Settings, scan_id: int, cursor: str | None, dispatch: Dispatch) -> int:
    from botocore.exceptions import ClientError

    url = settings.resolved_database_url
    with session_scope(url) as session:
        scan = session.get(Scan, scan_id)
        assert scan is not None
        try:
            source = parse_source(scan.source_uri)
        except InvalidSource as exc:
            raise ListingFailed(str(exc)) from exc
    if source.scheme == "s3":
        pages = list_s3_pages(settings, s3_client(settings), source, start_after=cursor)
    else:
        pages = list_folder_pages(settings, source)
    listed = 0
    try:
        for records, last_key in pages:
            with session_scope(url) as session:
                pending = register_sources(session, scan_id, records)
                record_listing_page(session, scan_id, cursor=last_key)
            listed += len(records)
            for chunk in chunked(pending, settings.chunk_size):
                dispatch(scan_id, chunk)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in PERMANENT_S3_ERRORS:
            raise ListingFailed(f"cannot list {source.uri}: {code}") from exc
        raise TransientFetchError(f"listing {source.uri}: {code}") from exc
    return listed


PERMANENT_S3_ERRORS = {"NoSuchBucket", "AccessDenied", "AllAccessDisabled", "InvalidBucketName"}


def run_listing(settings: Settings, scan_id: int, dispatch: Dispatch) -> int:
    """List the scan's source to the end; return how many objects were listed."""
    url = settings.resolved_database_url
    with session_scope(url) as session:
        scan = session.get(Scan, scan_id)
        if scan is None:
            raise LookupError(f"scan {scan_id} does not exist")
        if scan.listing_done or scan.status == ScanStatus.FAILED:
            return 0
        cursor = scan.list_cursor
        # A redelivered listing first hands out what an earlier attempt registered but
        # may not have dispatched before it died.
        resumed = pending_items(session, scan_id=scan_id) if cursor else []
    for chunk in chunked(resumed, settings.chunk_size):
        dispatch(scan_id, chunk)
    try:
        listed = _list_pages(settings, scan_id, cursor, dispatch)
    except ListingFailed as exc:
        with session_scope(url) as session:
            fail_scan(session, scan_id, str(exc))
        log.error("scan %s failed: %s", scan_id, exc)
        return 0
    with session_scope(url) as session:
        finish_listing(session, scan_id)
    log.info("scan %s: listed %d objects", scan_id, listed)
    return listed
