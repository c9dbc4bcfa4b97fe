"""Shared steps for the pipeline tests: fill a bucket, wait for scans, read outcomes."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from db.models import Image, ItemStatus, Scan, ScanItem, Source, Verdict
from db.session import session_scope
from tests.support.images import bad_inputs, jpeg_bytes


@dataclass
class BucketContents:
    bucket: str
    prefix: str
    good: dict[str, bytes]  # key → bytes (includes duplicates under other keys)
    bad: dict[str, str]  # key → expected error reason
    skipped: list[str]

    @property
    def distinct_good(self) -> int:
        return len(set(self.good.values()))

    @property
    def all_keys(self) -> list[str]:
        return [*self.good, *self.bad, *self.skipped]


def fill_bucket(s3: Any, bucket: str, *, images: int = 24, duplicates: int = 4) -> BucketContents:
    s3.create_bucket(Bucket=bucket)
    prefix = "uploads/"
    good: dict[str, bytes] = {}
    for i in range(images):
        good[f"{prefix}img {i:03d}.jpg"] = jpeg_bytes(i)  # a space: URL-encoding matters
    for i in range(duplicates):
        good[f"{prefix}copies/dup-{i}.jpeg"] = good[f"{prefix}img {i:03d}.jpg"]
    bad = {f"{prefix}bad/{name}": reason for name, (_, reason) in bad_inputs().items()}
    for key, data in good.items():
        s3.put_object(Bucket=bucket, Key=key, Body=data)
    for name, (data, _) in bad_inputs().items():
        s3.put_object(Bucket=bucket, Key=f"{prefix}bad/{name}", Body=data)
    skipped = [f"{prefix}notes.txt"]
    s3.put_object(Bucket=bucket, Key=skipped[0], Body=b"not scanned")
    s3.put_object(Bucket=bucket, Key="elsewhere/outside.jpg", Body=jpeg_bytes(500))
    return BucketContents(bucket, prefix, good, bad, skipped)


def wait_for_scan(url: str, scan_id: int, timeout: float = 180.0) -> Scan:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope(url) as session:
            scan = session.get(Scan, scan_id)
            assert scan is not None
            if scan.status in ("completed", "failed"):
                return scan
        time.sleep(0.25)
    raise TimeoutError(f"scan {scan_id} did not complete within {timeout}s")


def wait_until_final(url: str, scan_id: int, expected: int, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope(url) as session:
            final = session.scalar(
                select(func.count())
                .select_from(ScanItem)
                .where(ScanItem.scan_id == scan_id, ScanItem.status != ItemStatus.PENDING)
            )
        if final == expected:
            return
        time.sleep(0.25)
    raise TimeoutError(f"scan {scan_id}: not all {expected} items final within {timeout}s")


def items_by_key(url: str, scan_id: int) -> dict[str, ScanItem]:
    with session_scope(url) as session:
        rows = session.execute(
            select(ScanItem, Source).join(Source).where(ScanItem.scan_id == scan_id)
        ).all()
        result: dict[str, ScanItem] = {}
        for item, source in rows:
            assert source.key not in result, f"two items for {source.key}"
            result[source.key] = item
        return result


def table_counts(url: str) -> dict[str, int]:
    with session_scope(url) as session:
        return {
            model.__tablename__: int(session.scalar(select(func.count()).select_from(model)) or 0)
            for model in (Source, Image, Verdict)
        }


def assert_scan_outcome(url: str, scan_id: int, contents: BucketContents) -> None:
    """Every object ends with exactly one verdict or error row; each duplicate scored once."""
    items = items_by_key(url, scan_id)
    assert sorted(items) == sorted(contents.all_keys)
    for key in contents.good:
        assert items[key].status in ItemStatus.WITH_VERDICT, (key, items[key].status)
        assert items[key].verdict_id is not None
    for key, reason in contents.bad.items():
        assert (items[key].status, items[key].error_reason) == ("error", reason), key
    for key in contents.skipped:
        assert items[key].status == ItemStatus.SKIPPED
    with session_scope(url) as session:
        scored = session.scalars(
            select(ScanItem.image_sha256).where(ScanItem.status == ItemStatus.SCORED)
        ).all()
        verdicts = session.scalar(select(func.count()).select_from(Verdict))
    assert len(scored) == len(set(scored)) == contents.distinct_good
    assert verdicts == contents.distinct_good


def s3_event(
    bucket: str, key: str, etag: str, size: int, sequencer: str = "0055AED6DCD90281E5"
) -> dict[str, object]:
    """An S3 ObjectCreated notification as SQS delivers it (key form-URL-encoded)."""
    from urllib.parse import quote_plus

    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {
                        "key": quote_plus(key),
                        "size": size,
                        "eTag": etag,
                        "sequencer": sequencer,
                    },
                },
            }
        ]
    }


def worker_env(
    db_url: str, broker_url: str, s3_endpoint: str, model: Path, **overrides: str
) -> dict[str, str]:
    """The environment of a small, quick `modscan worker` against the test services."""
    return {
        "MODSCAN_DATABASE_URL": db_url,
        "MODSCAN_BROKER_URL": broker_url,
        "MODSCAN_S3_ENDPOINT_URL": s3_endpoint,
        "MODSCAN_MODEL_PATH": str(model),
        "MODSCAN_MAX_BATCH": "16",
        "MODSCAN_BATCH_SIZES": "[4]",
        "MODSCAN_CHUNK_SIZE": "8",
        "MODSCAN_WORKER_CONCURRENCY": "4",
        **overrides,
    }
