"""Tables: scans, sources, images (by sha256), verdicts and the scan items that tie them.

A *source* is one object where an image came from, identified by (scheme, bucket, key,
version), where version is the S3 version id, else the ETag, else the file's mtime and size.
An *image* is the bytes, identified by sha256: the same bytes under two keys are one image.
A *verdict* is one model version's answer about one image, unique per (image, model, version).
A *scan item* records what one scan did with one source: exactly one row per source per scan,
ending in a verdict (scored, cached, duplicate), an error with a reason, skipped, or dead.
"""

from __future__ import annotations

from datetime import UTC, datetime

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
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# SQLite only auto-increments INTEGER PRIMARY KEY; BigInteger elsewhere.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


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

    __table_args__ = (Index("ix_scans_created_at", "created_at"),)


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

    image: Mapped[Image] = relationship(lazy="raise")

    __table_args__ = (
        UniqueConstraint(
            "image_sha256", "model_name", "model_version", name="uq_verdicts_image_model"
        ),
        Index("ix_verdicts_label", "label"),
        Index("ix_verdicts_created_at", "created_at"),
        Index("ix_verdicts_model", "model_name", "model_version"),
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
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    source: Mapped[Source] = relationship(lazy="raise")
    verdict: Mapped[Verdict | None] = relationship(lazy="raise")

    __table_args__ = (
        UniqueConstraint("scan_id", "source_id", name="uq_scan_items_scan_source"),
        Index("ix_scan_items_scan_status", "scan_id", "status"),
        Index("ix_scan_items_image", "image_sha256"),
        Index("ix_scan_items_verdict", "verdict_id"),
    )
