"""Reading the review queue: pages of reviews oldest first, with the source each image was
first seen under, and the counts per state. Claims and decisions are in ``db.reviews``."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from db.models import Review, ReviewState, ScanItem, Source, Verdict


@dataclass(frozen=True)
class QueueEntry:
    """One review with the verdict it is about and one place its image was seen."""

    review: Review
    verdict: Verdict
    source: Source | None


@dataclass(frozen=True)
class QueuePage:
    items: list[QueueEntry]
    has_more: bool  # there are rows after the last item


def first_sources(session: Session, sha256s: Collection[str]) -> dict[str, Source]:
    """For each image, the source it was first seen under (by scan item id)."""
    if not sha256s:
        return {}
    first_item = (
        select(ScanItem.image_sha256, func.min(ScanItem.id).label("item_id"))
        .where(ScanItem.image_sha256.in_(sha256s))
        .group_by(ScanItem.image_sha256)
        .subquery()
    )
    rows = session.execute(
        select(first_item.c.image_sha256, Source)
        .join(ScanItem, ScanItem.id == first_item.c.item_id)
        .join(Source, Source.id == ScanItem.source_id)
    ).all()
    return {sha256: source for sha256, source in rows}


def image_sources(session: Session, *, sha256: str, limit: int = 5) -> list[Source]:
    """Up to ``limit`` distinct sources these bytes were seen under, first seen first."""
    first_seen = func.min(ScanItem.id).label("first_item")
    rows = session.execute(
        select(Source, first_seen)
        .join(ScanItem, ScanItem.source_id == Source.id)
        .where(ScanItem.image_sha256 == sha256)
        .group_by(Source.id)
        .order_by(first_seen)
        .limit(limit)
    ).all()
    return [source for source, _ in rows]


def _entries(session: Session, pairs: Sequence[Any]) -> list[QueueEntry]:
    sources = first_sources(session, {verdict.image_sha256 for _, verdict in pairs})
    return [
        QueueEntry(review=review, verdict=verdict, source=sources.get(verdict.image_sha256))
        for review, verdict in pairs
    ]


def review_queue(
    session: Session,
    *,
    state: str = ReviewState.OPEN,
    limit: int,
    after_id: int | None = None,
    model_version: str | None = None,
    since: datetime | None = None,
    scan_id: int | None = None,
) -> QueuePage:
    """Reviews in ``state``, oldest first (created_at, then id), after the review
    ``after_id`` (keyset pagination). ``since`` is inclusive, on the review's creation time;
    with ``scan_id``, only reviews of verdicts that scan's items point at."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    query = (
        select(Review, Verdict)
        .join(Verdict, Verdict.id == Review.verdict_id)
        .where(Review.state == state)
    )
    if after_id is not None:
        anchor = session.get(Review, after_id)
        if anchor is not None:
            query = query.where(
                or_(
                    Review.created_at > anchor.created_at,
                    and_(Review.created_at == anchor.created_at, Review.id > anchor.id),
                )
            )
        else:
            query = query.where(Review.id > after_id)
    if model_version is not None:
        query = query.where(Verdict.model_version == model_version)
    if since is not None:
        query = query.where(Review.created_at >= since)
    if scan_id is not None:
        linked = select(ScanItem.verdict_id).where(
            ScanItem.scan_id == scan_id, ScanItem.verdict_id.is_not(None)
        )
        query = query.where(Review.verdict_id.in_(linked))
    rows = session.execute(query.order_by(Review.created_at, Review.id).limit(limit + 1)).all()
    return QueuePage(items=_entries(session, rows[:limit]), has_more=len(rows) > limit)


def queue_entry(session: Session, *, verdict_id: int) -> QueueEntry | None:
    row = session.execute(
        select(Review, Verdict)
        .join(Verdict, Verdict.id == Review.verdict_id)
        .where(Review.verdict_id == verdict_id)
    ).first()
    return _entries(session, [row])[0] if row is not None else None


def remaining(session: Session) -> dict[str, int]:
    """Reviews per state (every state present, zero when none)."""
    counts = dict.fromkeys(ReviewState.ALL, 0)
    rows = session.execute(select(Review.state, func.count()).group_by(Review.state))
    for state, count in rows:
        counts[state] = count
    return counts
