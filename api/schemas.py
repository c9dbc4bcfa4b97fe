"""Request and response bodies: what the API promises, separate from the tables."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from db.browse import ImageHistory
from db.models import Scan, Verdict, as_utc
from db.scans import ScanCounts

LabelName = Literal["ai", "real"]


Timestamp = Annotated[datetime, AfterValidator(as_utc)]


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. not_found")
    message: str = Field(description="What went wrong, for a human")
    details: list[dict[str, object]] | None = Field(
        default=None, description="Per-field problems, on validation errors"
    )


class ErrorOut(BaseModel):
    error: ErrorDetail


class ScanCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(
        min_length=1,
        max_length=2048,
        description="What to scan: s3://bucket or s3://bucket/prefix",
        examples=["s3://moderation-inbox/uploads/2024/"],
    )


class ScanCountsOut(BaseModel):
    by_status: dict[str, int] = Field(description="Scan items per status")
    errors_by_reason: dict[str, int] = Field(description="Items in error per reason")
    by_label: dict[str, int] = Field(description="Items with a verdict, per label")


class ScanOut(BaseModel):
    id: int
    source: str = Field(description="The URI the scan was started on")
    kind: str = Field(description="prefix | folder | stream")
    status: str = Field(description="listing | running | completed | failed")
    listing_done: bool
    listed: int = Field(description="Objects listed so far")
    counts: ScanCountsOut
    progress: float | None = Field(
        description="Finished items / listed, in [0, 1]; null until listing is done or when "
        "nothing was listed"
    )
    created_at: Timestamp
    updated_at: Timestamp
    finished_at: Timestamp | None
    error: str | None

    @classmethod
    def build(cls, scan: Scan, counts: ScanCounts) -> ScanOut:
        progress: float | None = None
        if scan.listing_done and scan.listed > 0:
            progress = min(1.0, counts.finished / scan.listed)
        return cls(
            id=scan.id,
            source=scan.source_uri,
            kind=scan.kind,
            status=scan.status,
            listing_done=scan.listing_done,
            listed=scan.listed,
            counts=ScanCountsOut(
                by_status=counts.by_status,
                errors_by_reason=counts.errors_by_reason,
                by_label=counts.by_label,
            ),
            progress=progress,
            created_at=scan.created_at,
            updated_at=scan.updated_at,
            finished_at=scan.finished_at,
            error=scan.error,
        )


class VerdictOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, protected_namespaces=())

    id: int
    image_sha256: str
    ai_score: float = Field(description="P(AI-generated) in [0, 1]")
    label: str = Field(description="ai | real")
    threshold: float = Field(description="ai_score at or above which the label is ai")
    model_name: str
    model_version: str
    created_at: Timestamp
    action: str | None = Field(
        description="flagged | cleared | needs_review; null before policies existed"
    )
    policy_version: int | None = Field(description="The policy version that decided it")
    check_score: float | None = Field(
        description="ai_score of the policy's robustness variant, when it was checked"
    )

    @classmethod
    def build(cls, verdict: Verdict) -> VerdictOut:
        return cls.model_validate(verdict)


class VerdictPageOut(BaseModel):
    items: list[VerdictOut]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next page; null on the last page"
    )


class ImageOut(BaseModel):
    sha256: str
    size_bytes: int
    width: int
    height: int
    format: str
    created_at: Timestamp


class SeenSourceOut(BaseModel):
    uri: str
    version_id: str | None
    first_seen_at: Timestamp = Field(description="When a scan first listed this source")


class ImageHistoryOut(BaseModel):
    image: ImageOut
    verdicts: list[VerdictOut] = Field(description="Every verdict, every model, oldest first")
    sources: list[SeenSourceOut] = Field(description="Where these bytes were seen, first first")
    sources_truncated: bool = Field(description="True when more sources exist than are listed")

    @classmethod
    def build(cls, history: ImageHistory) -> ImageHistoryOut:
        image = history.image
        return cls(
            image=ImageOut(
                sha256=image.sha256,
                size_bytes=image.size_bytes,
                width=image.width,
                height=image.height,
                format=image.format,
                created_at=image.created_at,
            ),
            verdicts=[VerdictOut.build(v) for v in history.verdicts],
            sources=[
                SeenSourceOut(uri=s.uri, version_id=s.version_id, first_seen_at=s.first_seen_at)
                for s in history.sources
            ],
            sources_truncated=history.sources_truncated,
        )


class HealthOut(BaseModel):
    status: Literal["ok", "unavailable"]
    database: str = Field(description="ok, or what failed")
    broker: str = Field(description="ok, embedded (no broker configured), or what failed")
    error: ErrorDetail | None = Field(default=None, description="Set when status is unavailable")
