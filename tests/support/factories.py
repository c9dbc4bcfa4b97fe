"""Row factories for the review tests: an image seen under a source by a scan, a verdict
the policy sent to review, and its open review. Each commits before returning."""

from __future__ import annotations

import hashlib
import io
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from PIL import Image as PilImage
from sqlalchemy import update

from db.keys import issue_key
from db.models import (
    Action,
    Image,
    ItemStatus,
    Review,
    Scan,
    ScanItem,
    ScanStatus,
    Source,
    Verdict,
)
from db.policy import PolicyDraft, change_policy
from db.reviews import open_reviews
from db.session import session_scope
from tests.support.images import jpeg_bytes


@dataclass(frozen=True)
class ReviewItem:
    verdict_id: int
    sha256: str
    scan_id: int
    source_uri: str


def s3_upload(endpoint: str, bucket: str, key: str, data: bytes) -> None:
    """Put an object into moto's S3 (creating the bucket when needed)."""
    import boto3

    client: Any = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key=key, Body=data)


def make_scan(url: str) -> int:
    with session_scope(url) as session:
        scan = Scan(source_uri="s3://review-bucket/", kind="prefix", status=ScanStatus.COMPLETED)
        session.add(scan)
        session.flush()
        return scan.id


def make_review_item(
    url: str,
    *,
    data: bytes | None = None,
    seed: int = 0,
    scan_id: int | None = None,
    bucket: str = "review-bucket",
    key: str | None = None,
    model_version: str = "v1",
    ai_score: float = 0.55,
    check_score: float | None = None,
    created_at: datetime | None = None,
    open_review: bool = True,
) -> ReviewItem:
    """An image (``data``, else a JPEG drawn from ``seed``) listed under s3://bucket/key by a
    scan, with a needs_review verdict and, unless ``open_review`` is False, its review."""
    data = data if data is not None else jpeg_bytes(seed)
    sha256 = hashlib.sha256(data).hexdigest()
    key = key or f"uploads/{uuid.uuid4().hex}.jpg"
    scan_id = scan_id or make_scan(url)
    with PilImage.open(io.BytesIO(data)) as decoded:
        width, height, image_format = decoded.width, decoded.height, decoded.format or "JPEG"
    with session_scope(url) as session:
        if session.get(Image, sha256) is None:
            session.add(
                Image(
                    sha256=sha256,
                    size_bytes=len(data),
                    width=width,
                    height=height,
                    format=image_format,
                )
            )
        source = Source(scheme="s3", bucket=bucket, key=key, version=uuid.uuid4().hex)
        verdict = Verdict(
            image_sha256=sha256,
            model_name="efficientnet",
            model_version=model_version,
            ai_score=ai_score,
            label="ai" if ai_score >= 0.5 else "real",
            threshold=0.5,
            action=Action.NEEDS_REVIEW,
            check_score=check_score,
        )
        session.add_all([source, verdict])
        session.flush()
        session.add(
            ScanItem(
                scan_id=scan_id,
                source_id=source.id,
                status=ItemStatus.SCORED,
                image_sha256=sha256,
                verdict_id=verdict.id,
            )
        )
        if open_review:
            open_reviews(session, [verdict.id])
            if created_at is not None:
                session.execute(
                    update(Review)
                    .where(Review.verdict_id == verdict.id)
                    .values(created_at=created_at)
                )
        return ReviewItem(
            verdict_id=verdict.id, sha256=sha256, scan_id=scan_id, source_uri=source.uri
        )


def make_key(url: str, role: str, name: str | None = None) -> tuple[str, str]:
    """A fresh API key with this role: (token, actor)."""
    with session_scope(url) as session:
        issued = issue_key(
            session, name=name or f"{role}-{uuid.uuid4().hex[:6]}", role=role, actor="test"
        )
        return issued.token, issued.key.actor


def set_blind_review(url: str, blind: bool) -> None:
    """A new policy version with blind review on or off."""
    with session_scope(url) as session:
        change_policy(session, PolicyDraft(low=0.3, high=0.7, blind_review=blind), actor="test")
