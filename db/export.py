"""Streaming export: one row per source object per scan, duplicates and errors included.

Each row answers "who decided what about this image, on which model and policy, and
when": the verdict (model, score, policy version, action) and the review outcome.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Review, ScanItem, Source, Verdict

EXPORT_FIELDS = (
    "scan_id",
    "source_uri",
    "version",
    "sha256",
    "status",
    "error_reason",
    "error_detail",
    "label",
    "ai_score",
    "threshold",
    "model_name",
    "model_version",
    "policy_version",
    "action",
    "check_score",
    "review_state",
    "review_decision",
    "review_note",
    "reviewed_by",
    "reviewed_at",
    "item_updated_at",
    "verdict_created_at",
)


def export_rows(session: Session, *, scan_id: int | None = None) -> Iterator[dict[str, Any]]:
    query = (
        select(ScanItem, Source, Verdict, Review)
        .join(Source, ScanItem.source_id == Source.id)
        .outerjoin(Verdict, ScanItem.verdict_id == Verdict.id)
        .outerjoin(Review, Review.verdict_id == Verdict.id)
        .order_by(ScanItem.id)
        .execution_options(yield_per=1000)
    )
    if scan_id is not None:
        query = query.where(ScanItem.scan_id == scan_id)
    for item, source, verdict, review in session.execute(query):
        yield {
            "scan_id": item.scan_id,
            "source_uri": source.uri,
            "version": source.version,
            "sha256": item.image_sha256,
            "status": item.status,
            "error_reason": item.error_reason,
            "error_detail": item.error_detail,
            "label": verdict.label if verdict else None,
            "ai_score": verdict.ai_score if verdict else None,
            "threshold": verdict.threshold if verdict else None,
            "model_name": verdict.model_name if verdict else None,
            "model_version": verdict.model_version if verdict else None,
            "policy_version": verdict.policy_version if verdict else None,
            "action": verdict.action if verdict else None,
            "check_score": verdict.check_score if verdict else None,
            "review_state": review.state if review else None,
            "review_decision": review.decision if review else None,
            "review_note": review.note if review else None,
            "reviewed_by": review.decided_by if review else None,
            "reviewed_at": review.decided_at.isoformat() if review and review.decided_at else None,
            "item_updated_at": item.updated_at.isoformat() if item.updated_at else None,
            "verdict_created_at": verdict.created_at.isoformat() if verdict else None,
        }
