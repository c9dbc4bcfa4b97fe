"""The one settings object, read from ``MODSCAN_*`` environment variables.

Defaults give the embedded mode: SQLite at ``./modscan.db`` and in-process batching.
Setting ``MODSCAN_BROKER_URL`` and ``MODSCAN_DATABASE_URL`` turns on the distributed mode.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

EMBEDDED_DATABASE_URL = "sqlite:///./modscan.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MODSCAN_", extra="ignore")

    # Where things live.
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; unset means embedded SQLite at ./modscan.db"
    )
    broker_url: str | None = Field(
        default=None, description="Celery broker (redis://...); unset means in-process batching"
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="S3/SQS endpoint override (MinIO, moto, localstack)"
    )
    aws_region: str = Field(default="us-east-1", description="Region for S3 and SQS clients")
    model_path: Path | None = Field(
        default=None,
        description="Model artifact folder; unset means models/default, else an untrained B6",
    )
    home: Path = Field(
        default=Path.home() / ".cache" / "modscan",
        description="Cache folder (the generated untrained model lives here)",
    )

    # Batching and inference.
    max_batch: int = Field(default=256, ge=1, description="Largest inference batch")
    max_wait_ms: int = Field(
        default=50, ge=0, description="How long a partial batch waits for more images"
    )
    batch_sizes: list[int] = Field(
        default=[16, 64, 256],
        description="Compiled batch shapes; partial batches are padded up to the next one",
    )
    precision: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto", description="auto: float16 mixed precision on GPU, float32 on CPU"
    )
    xla: Literal["auto", "on", "off"] = Field(
        default="auto", description="auto: XLA on GPU, off on CPU (where it is 7x slower)"
    )
    fetch_concurrency: int = Field(default=32, ge=1, description="Object fetches in flight")

    # Workers and delivery.
    worker_concurrency: int = Field(
        default=8, ge=1, description="Inference task threads per worker process"
    )
    chunk_size: int = Field(default=64, ge=1, description="Images per classify task")
    max_attempts: int = Field(
        default=3, ge=1, description="Deliveries before an image is dead-lettered"
    )
    visibility_timeout_s: int = Field(
        default=3600, ge=10, description="Redis broker visibility timeout"
    )
    batch_timeout_s: float = Field(
        default=600.0, description="How long a task waits for its batch to be written"
    )
    transient_retry_s: float = Field(
        default=900.0,
        ge=0,
        description="How long work retries through a database or broker outage",
    )
    transient_backoff_max_s: float = Field(
        default=30.0, gt=0, description="Cap on the backoff between transient retries"
    )
    sweep_interval_s: float = Field(
        default=60.0,
        ge=0,
        description="How often one worker of the fleet re-enqueues lost work (0 = never)",
    )
    sweep_after_s: float = Field(
        default=900.0,
        gt=0,
        description="Pending work untouched this long is re-enqueued by the sweep",
    )

    # Ingest rules and decoding caps.
    scan_extensions: list[str] = Field(
        default=[".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".avif"],
        description="Object keys with other extensions are recorded as skipped ('*' = all)",
    )
    max_bytes: int = Field(default=20 * 1024 * 1024, description="Larger objects are too_large")
    max_pixels: int = Field(default=50_000_000, description="Larger images are too_large")
    max_frames: int = Field(default=1000, description="Longer animations are too_large")

    # HTTP API.
    api_host: str = Field(default="127.0.0.1", description="modscan api bind address")
    api_port: int = Field(default=8000, description="modscan api port")
    api_max_page_size: int = Field(default=500, description="Cap on page sizes")
    api_rate_limit_per_minute: int = Field(
        default=600, ge=0, description="Requests a minute per API key (0 = unlimited)"
    )
    review_lease_s: int = Field(
        default=600,
        ge=10,
        description="How long a claimed review stays a reviewer's before others may take it",
    )
    ingest_token: str | None = Field(
        default=None,
        description="Token the /v1/ingest webhooks require; unset turns them off (503)",
    )

    # Outbound events (the transactional outbox and its relay).
    outbox_webhook_url: str | None = Field(
        default=None, description="POST signed events here; needs outbox_webhook_secret"
    )
    outbox_webhook_secret: str | None = Field(
        default=None, description="HMAC-SHA256 key for the X-Modscan-Signature header"
    )
    outbox_webhook_timeout_s: float = Field(
        default=10.0, gt=0, description="How long one webhook delivery may take"
    )
    outbox_sqs_queue_url: str | None = Field(
        default=None, description="Send events to this SQS queue (.fifo: deduplicated)"
    )
    outbox_redis_url: str | None = Field(
        default=None, description="XADD events to a stream on this Redis (redis://...)"
    )
    outbox_redis_stream: str = Field(default="modscan:events", description="The stream's key")
    outbox_redis_maxlen: int = Field(
        default=100_000, ge=1, description="Trim the stream to about this many entries"
    )
    outbox_max_attempts: int = Field(
        default=20, ge=1, description="Tries before an event is kept as failed for a target"
    )
    outbox_lease_s: float = Field(
        default=60.0, gt=0, description="A claimed event is tried again after this long"
    )
    outbox_backoff_s: float = Field(
        default=10.0, gt=0, description="First retry delay; doubles on each failure"
    )
    outbox_backoff_max_s: float = Field(default=3600.0, gt=0, description="Cap on retry delays")
    outbox_poll_s: float = Field(default=1.0, gt=0, description="Relay poll interval when idle")

    @model_validator(mode="after")
    def _webhook_is_signed(self) -> Settings:
        if self.outbox_webhook_url and not self.outbox_webhook_secret:
            raise ValueError(
                "MODSCAN_OUTBOX_WEBHOOK_URL is set without MODSCAN_OUTBOX_WEBHOOK_SECRET: "
                "modscan does not send unsigned webhooks"
            )
        return self

    @property
    def outbox_targets(self) -> list[str]:
        """The outbound targets this deployment configures, in a fixed order."""
        targets = []
        if self.outbox_webhook_url and self.outbox_webhook_secret:
            targets.append("webhook")
        if self.outbox_sqs_queue_url:
            targets.append("sqs")
        if self.outbox_redis_url:
            targets.append("redis")
        return targets

    @property
    def claim_lease_s(self) -> float:
        """How long a delivery holds its items: past any transient retry's wait, short of
        the visibility timeout, so a redelivery after a killed worker may claim them."""
        return self.visibility_timeout_s * 0.8

    @property
    def embedded(self) -> bool:
        """True when no broker is configured: batching runs in this process."""
        return not self.broker_url

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or EMBEDDED_DATABASE_URL

    @property
    def database_is_embedded_default(self) -> bool:
        """Only the embedded default may be created and migrated without asking."""
        return self.database_url is None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
