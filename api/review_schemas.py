"""Request and response bodies of the review queue (``/v1/review``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas import Timestamp
from db.review_queue import QueueEntry

DecisionName = Literal["confirm_ai", "confirm_real", "escalate"]
ReviewStateName = Literal["open", "escalated", "decided"]


class ReviewDecisionIn(BaseModel):
    """A reviewer's decision. Only these two fields: anything else (an ``ai_score``, a
    ``label``, a ``decided_by``) is refused with a 422, never copied onto a row."""

    model_config = ConfigDict(extra="forbid")

    decision: DecisionName = Field(
        description="confirm_ai, confirm_real, or escalate (passes it to an admin)"
    )
    note: str | None = Field(default=None, max_length=2000, description="Why, for the record")


class ReviewOut(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    verdict_id: int
    state: ReviewStateName
    image_sha256: str
    image_url: str = Field(description="The image's bytes, for the signed-in caller")
    source_uri: str | None = Field(description="Where the image was first seen")
    model_name: str
    model_version: str
    policy_version: int | None
    scores_hidden: bool = Field(description="True under blind review: the fields below are null")
    ai_score: float | None = Field(description="P(AI-generated); null under blind review")
    label: str | None = Field(description="ai | real; null under blind review")
    check_score: float | None = Field(
        description="The robustness variant's score, when checked; null under blind review"
    )
    claimed_by: str | None
    claim_expires_at: Timestamp | None
    decision: DecisionName | None
    note: str | None
    decided_by: str | None
    decided_at: Timestamp | None
    created_at: Timestamp

    @classmethod
    def build(cls, entry: QueueEntry, *, blind: bool) -> ReviewOut:
        review, verdict = entry.review, entry.verdict
        return cls(
            verdict_id=verdict.id,
            state=review.state,
            image_sha256=verdict.image_sha256,
            image_url=f"/v1/review/{verdict.id}/image",
            source_uri=entry.source.uri if entry.source is not None else None,
            model_name=verdict.model_name,
            model_version=verdict.model_version,
            policy_version=verdict.policy_version,
            scores_hidden=blind,
            ai_score=None if blind else verdict.ai_score,
            label=None if blind else verdict.label,
            check_score=None if blind else verdict.check_score,
            claimed_by=review.claimed_by,
            claim_expires_at=review.claim_expires_at,
            decision=review.decision,
            note=review.note,
            decided_by=review.decided_by,
            decided_at=review.decided_at,
            created_at=review.created_at,
        )


class ReviewCountsOut(BaseModel):
    open: int = Field(description="Waiting for a reviewer (claimed or not)")
    escalated: int = Field(description="Passed up to an admin")
    decided: int


class ReviewQueueOut(BaseModel):
    items: list[ReviewOut]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next page; null on the last page"
    )
    remaining: ReviewCountsOut = Field(description="Reviews per state, over the whole queue")
