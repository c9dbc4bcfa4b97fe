"""Read queries behind the HTTP API: scan detail, verdict listing, image history.

Plain functions over a session, keyword arguments only; they never commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import Image, Scan, ScanItem, Source, Verdict


def get_scan(session: Session, *, scan_id: int) -> Scan | None:
    return session.get(Scan, scan_id)


@dataclass(frozen=True)
class VerdictPage:
    items: list[Verdict]
    has_more: bool  # there are rows after the last item


def list_verdicts(
    session: Session,
    *,
    limit: int,
    after_id: int | None = None,
    scan_id: int | None = None,
    label: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    model_name: str | None = None,
    model_version: str | None = None,
    owner: str | None = None,
) -> VerdictPage:
    """Verdicts by ascending id, after ``after_id`` (keyset pagination).

    ``since`` is inclusive and ``until`` exclusive, both on the verdict's creation time.
    With ``scan_id``, only verdicts that scan's items point at, each once. With ``owner``,
    only verdicts of scans that actor created (a submitter's view).
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    query = select(Verdict)
    if after_id is not None:
        query = query.where(Verdict.id > after_id)
    if scan_id is not None:
        linked = select(ScanItem.verdict_id).where(
            ScanItem.scan_id == scan_id, ScanItem.verdict_id.is_not(None)
        )
        query = query.where(Verdict.id.in_(linked))
    if owner is not None:
        owned = (
            select(ScanItem.verdict_id)
            .join(Scan, ScanItem.scan_id == Scan.id)
            .where(Scan.created_by == owner, ScanItem.verdict_id.is_not(None))
        )
        query = query.where(Verdict.id.in_(owned))
    if label is not None:
        query = query.where(Verdict.label == label)
    if since is not None:
        query = query.where(Verdict.created_at >= since)
    if until is not None:
        query = query.where(Verdict.created_at < until)
    if model_name is not None:
        query = query.where(Verdict.model_name == model_name)
    if model_version is not None:
        query = query.where(Verdict.model_version == model_version)
    rows = list(session.scalars(query.order_by(Verdict.id).limit(limit + 1)))
    return VerdictPage(items=rows[:limit], has_more=len(rows) > limit)


@dataclass(frozen=True)
class SeenSource:
    """One object the image's bytes were found under, and when a scan first listed it."""

    uri: str
    version_id: str | None
    first_seen_at: datetime


@dataclass
class ImageHistory:
    image: Image
    verdicts: list[Verdict] = field(default_factory=list)  # oldest first, every model version
    sources: list[SeenSource] = field(default_factory=list)  # first seen first
    sources_truncated: bool = False


def image_history(
    session: Session, *, sha256: str, max_sources: int, owner: str | None = None
) -> ImageHistory | None:
    """The image, all its verdicts and the sources it was seen under; None when unknown.

    With ``owner``, None also when none of that actor's scans saw the image, and only the
    sources their scans listed are shown.
    """
    image = session.get(Image, sha256)
    if image is None:
        return None
    own_items = select(ScanItem.id).join(Scan, ScanItem.scan_id == Scan.id)
    if owner is not None:
        own_items = own_items.where(Scan.created_by == owner, ScanItem.image_sha256 == sha256)
        if session.scalar(own_items.limit(1)) is None:
            return None
    verdicts = list(
        session.scalars(
            select(Verdict)
            .where(Verdict.image_sha256 == sha256)
            .order_by(Verdict.created_at, Verdict.id)
        )
    )
    first_seen = func.min(ScanItem.created_at).label("first_seen_at")
    rows = session.execute(
        select(Source, first_seen)
        .join(ScanItem, ScanItem.source_id == Source.id)
        .where(
            ScanItem.image_sha256 == sha256,
            *([ScanItem.id.in_(own_items)] if owner is not None else []),
        )
        .group_by(Source.id)
        .order_by(first_seen, Source.id)
        .limit(max_sources + 1)
    ).all()
    sources = [
        SeenSource(uri=source.uri, version_id=source.version_id, first_seen_at=seen)
        for source, seen in rows[:max_sources]
    ]
    return ImageHistory(
        image=image,
        verdicts=verdicts,
        sources=sources,
        sources_truncated=len(rows) > max_sources,
    )
