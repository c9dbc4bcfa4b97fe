"""Tables: scans, sources, images (by sha256), verdicts and the scan items that tie them;
and the moderation workflow around them: policies, reviews, API keys, the audit trail and
the outbox.

A *source* is one object where an image came from, identified by (scheme, bucket, key,
version), where version is the S3 version id, else the ETag, else the file's mtime and size.
An *image* is the bytes, identified by sha256: the same bytes under two keys are one image.
A *verdict* is one model version's answer about one image, unique per (image, model, version).
A *scan item* records what one scan did with one source: exactly one row per source per scan,
ending in a verdict (scored, cached, duplicate), an error with a reason, skipped, or dead.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# SQLite only auto-increments INTEGER PRIMARY KEY; BigInteger elsewhere.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


@overload
def as_utc(moment: datetime) -> datetime: ...
@overload
def as_utc(moment: None) -> None: ...
def as_utc(moment: datetime | None) -> datetime | None:
    """The one naive-datetime rule: datetimes without an offset are taken as UTC (SQLite
    hands them back naive, and users type them); others are converted to UTC."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: DateTime(timezone=True)}


class ScanStatus:
    LISTING = "listing"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class ItemStatus:
    PENDING = "pending"
    SCORED = "scored"  # the model ran on these bytes for this item
    CACHED = "cached"  # a verdict for these bytes and model was already stored
    DUPLICATE = "duplicate"  # same bytes as another item scored in the same batch
    ERROR = "error"  # bad input: error_reason says why
    SKIPPED = "skipped"  # ruled out by its extension before fetching
    DEAD = "dead"  # dead-lettered after max attempts

    WITH_VERDICT = (SCORED, CACHED, DUPLICATE)
    FINAL = (SCORED, CACHED, DUPLICATE, ERROR, SKIPPED, DEAD)
    ALL = (PENDING, *FINAL)


class ErrorReason:
    CORRUPT = "corrupt"
    TOO_LARGE = "too_large"
    UNSUPPORTED_FORMAT = "unsupported_format"
    SOURCE_MISSING = "source_missing"
    MAX_ATTEMPTS = "max_attempts"


class Label:
    AI = "ai"
    REAL = "real"
    ALL = (AI, REAL)


class Action:
    """What the policy made of a verdict."""

    FLAGGED = "flagged"  # ai_score at or above the policy's high threshold
    CLEARED = "cleared"  # below the low threshold
    NEEDS_REVIEW = "needs_review"  # in between, or the robustness check disagreed
    ALL = (FLAGGED, CLEARED, NEEDS_REVIEW)


class Role:
    SUBMITTER = "submitter"  # create scans, read own scans
    REVIEWER = "reviewer"  # the review queue
    AUDITOR = "auditor"  # read-only, everything
    ADMIN = "admin"  # keys and policy
    ALL = (SUBMITTER, REVIEWER, AUDITOR, ADMIN)


class ReviewState:
    OPEN = "open"  # waiting for a reviewer
    ESCALATED = "escalated"  # a reviewer passed it up
    DECIDED = "decided"
    ALL = (OPEN, ESCALATED, DECIDED)


class Decision:
    CONFIRM_AI = "confirm_ai"
    CONFIRM_REAL = "confirm_real"
    ESCALATE = "escalate"
    ALL = (CONFIRM_AI, CONFIRM_REAL, ESCALATE)


class Scan(Base):
    __tablename__ = "scans"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source_uri: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))  # prefix | folder | stream
    status: Mapped[str] = mapped_column(String(16), default=ScanStatus.LISTING)
    listing_done: Mapped[bool] = mapped_column(Boolean, default=False)
    list_cursor: Mapped[str | None] = mapped_column(Text, default=None)
    listed: Mapped[int] = mapped_column(BigInteger, default=0)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    # The actor that started it ("key:<key_id>", "cli:<user>"); submitters see only theirs.
    created_by: Mapped[str | None] = mapped_column(String(128), default=None)

    __table_args__ = (
        Index("ix_scans_created_at", "created_at"),
        Index("ix_scans_created_by", "created_by"),
    )


class Source(Base):
    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    scheme: Mapped[str] = mapped_column(String(8))  # s3 | file
    bucket: Mapped[str] = mapped_column(String(255))
    key: Mapped[str] = mapped_column(Text)
    version: Mapped[str] = mapped_column(String(255))  # version id, else ETag, else mtime-size
    version_id: Mapped[str | None] = mapped_column(String(255), default=None)
    etag: Mapped[str | None] = mapped_column(String(255), default=None)
    size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("scheme", "bucket", "key", "version", name="uq_sources_identity"),
    )

    @property
    def uri(self) -> str:
        if self.scheme == "file":
            return f"file://{self.key}"
        return f"s3://{self.bucket}/{self.key}"


class Image(Base):
    __tablename__ = "images"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    format: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Verdict(Base):
    __tablename__ = "verdicts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    image_sha256: Mapped[str] = mapped_column(ForeignKey("images.sha256"))
    model_name: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(64))
    ai_score: Mapped[float] = mapped_column(Float)  # P(AI-generated) in [0, 1]
    label: Mapped[str] = mapped_column(String(16))
    threshold: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The policy's reading of the score; null on verdicts written before policies existed.
    action: Mapped[str | None] = mapped_column(String(16), default=None)
    policy_version: Mapped[int | None] = mapped_column(ForeignKey("policies.version"), default=None)
    # The score of the policy's robustness variant (e.g. the mirrored image), when checked.
    check_score: Mapped[float | None] = mapped_column(Float, default=None)

    image: Mapped[Image] = relationship(lazy="raise")

    __table_args__ = (
        UniqueConstraint(
            "image_sha256", "model_name", "model_version", name="uq_verdicts_image_model"
        ),
        Index("ix_verdicts_label", "label"),
        Index("ix_verdicts_created_at", "created_at"),
        Index("ix_verdicts_model", "model_name", "model_version"),
        Index("ix_verdicts_action", "action"),
    )


class ScanItem(Base):
    __tablename__ = "scan_items"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    scan_id: Mapped[int] = mapped_column(ForeignKey("scans.id", ondelete="CASCADE"))
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"))
    status: Mapped[str] = mapped_column(String(16), default=ItemStatus.PENDING)
    error_reason: Mapped[str | None] = mapped_column(String(32), default=None)
    error_detail: Mapped[str | None] = mapped_column(Text, default=None)
    image_sha256: Mapped[str | None] = mapped_column(ForeignKey("images.sha256"), default=None)
    verdict_id: Mapped[int | None] = mapped_column(ForeignKey("verdicts.id"), default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The delivery holding the item, and until when: see db.items.claim_items.
    claim_token: Mapped[str | None] = mapped_column(String(32), default=None)
    claimed_until: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    source: Mapped[Source] = relationship(lazy="raise")
    verdict: Mapped[Verdict | None] = relationship(lazy="raise")

    __table_args__ = (
        UniqueConstraint("scan_id", "source_id", name="uq_scan_items_scan_source"),
        Index("ix_scan_items_scan_status", "scan_id", "status"),
        Index("ix_scan_items_image", "image_sha256"),
        Index("ix_scan_items_verdict", "verdict_id"),
        Index(
            "ix_scan_items_pending_updated",
            "updated_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )


class Lease(Base):
    """A named lease one process of the fleet holds until ``expires_at`` (the sweep's)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column()


class Policy(Base):
    """One version of the policy that maps ai_score to an action. Rows are never changed:
    a change is a new version, and the highest version is the one in force."""

    __tablename__ = "policies"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    low: Mapped[float] = mapped_column(Float)  # ai_score below this: cleared
    high: Mapped[float] = mapped_column(Float)  # at or above this: flagged
    robustness_check: Mapped[str] = mapped_column(String(16))  # off | hflip | jpeg_q75
    blind_review: Mapped[bool] = mapped_column(Boolean)  # hide scores from reviewers
    note: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Review(Base):
    """A verdict the policy sent to people, and what they decided about it."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    verdict_id: Mapped[int] = mapped_column(ForeignKey("verdicts.id"), unique=True)
    state: Mapped[str] = mapped_column(String(16), default=ReviewState.OPEN)
    claimed_by: Mapped[str | None] = mapped_column(String(128), default=None)
    claim_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    decision: Mapped[str | None] = mapped_column(String(16), default=None)
    note: Mapped[str | None] = mapped_column(Text, default=None)
    decided_by: Mapped[str | None] = mapped_column(String(128), default=None)
    decided_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    verdict: Mapped[Verdict] = relationship(lazy="raise")

    __table_args__ = (Index("ix_reviews_state_created", "state", "created_at", "id"),)


class ApiKey(Base):
    """An API key: the public ``key_id`` names it, only a hash of the secret is stored."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)

    @property
    def actor(self) -> str:
        return f"key:{self.key_id}"


class AuditEvent(Base):
    """An append-only, hash-chained record of one state change.

    ``hash`` = sha256(``prev_hash`` ‖ canonical JSON of the row's other fields); the
    database refuses UPDATE and DELETE on this table (see migration 0002).
    """

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(32))
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(128))
    before: Mapped[str | None] = mapped_column(Text, default=None)  # canonical JSON
    after: Mapped[str | None] = mapped_column(Text, default=None)  # canonical JSON
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)

    __table_args__ = (
        Index("ix_audit_subject", "subject_type", "subject_id"),
        Index("ix_audit_actor", "actor"),
        Index("ix_audit_occurred_at", "occurred_at"),
    )


class OutboxMessage(Base):
    """An event for one outbound target, written in the transaction that caused it and
    delivered at least once by the relay. ``event_id`` is shared by every target's copy
    and is what consumers deduplicate on."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36))
    target: Mapped[str] = mapped_column(String(16))  # webhook | sqs | redis
    topic: Mapped[str] = mapped_column(String(32))  # verdict.flagged, review.decided, ...
    payload: Mapped[str] = mapped_column(Text)  # JSON
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)

    __table_args__ = (
        UniqueConstraint("event_id", "target", name="uq_outbox_event_target"),
        Index("ix_outbox_due", "delivered_at", "next_attempt_at"),
    )
