"""Fetching source bytes from S3 or the local disk, with caps and typed failures."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from db.models import ErrorReason
from modscan.settings import Settings
from workers.classifier.decode import ImageError


class SourceMissing(Exception):
    """The object or file is gone (deleted after it was listed or announced)."""


class TransientFetchError(Exception):
    """A failure worth retrying later: throttling, 5xx, timeouts, connection errors."""


def s3_client(settings: Settings, *, max_pool_connections: int | None = None) -> Any:
    """A boto3 S3 client honouring the endpoint override and standard retries."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "total_max_attempts": 5},
        max_pool_connections=max_pool_connections or settings.fetch_concurrency,
        connect_timeout=10,
        read_timeout=60,
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.aws_region,
        config=config,
    )


class Fetcher:
    """Reads one source's bytes; thread-safe (one boto3 client shared by the threads)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = s3_client(self.settings)
            return self._client

    def fetch(self, scheme: str, bucket: str, key: str, version_id: str | None) -> bytes:
        if scheme == "file":
            return self._read_file(Path(key))
        return self._get_object(bucket, key, version_id)

    def _read_file(self, path: Path) -> bytes:
        limit = self.settings.max_bytes
        try:
            with path.open("rb") as handle:
                data = handle.read(limit + 1)
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise SourceMissing(f"{path} no longer exists") from exc
        except IsADirectoryError as exc:
            raise SourceMissing(f"{path} is a directory") from exc
        except OSError as exc:
            raise TransientFetchError(f"reading {path}: {exc}") from exc
        if len(data) > limit:
            raise ImageError(ErrorReason.TOO_LARGE, f"larger than {limit} bytes")
        return data

    def _get_object(self, bucket: str, key: str, version_id: str | None) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        limit = self.settings.max_bytes
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id:
            kwargs["VersionId"] = version_id
        try:
            response = self.client.get_object(**kwargs)
            length = int(response.get("ContentLength") or 0)
            if length > limit:
                response["Body"].close()
                raise ImageError(ErrorReason.TOO_LARGE, f"object is {length} bytes, limit {limit}")
            data: bytes = response["Body"].read(limit + 1)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            if code in {"NoSuchKey", "NoSuchVersion", "404", "NotFound"} or status == 404:
                raise SourceMissing(f"s3://{bucket}/{key} no longer exists") from exc
            if code == "NoSuchBucket":
                raise SourceMissing(f"bucket {bucket} does not exist") from exc
            if status >= 500 or code in {"SlowDown", "Throttling", "RequestTimeout"}:
                raise TransientFetchError(f"s3://{bucket}/{key}: {code or status}") from exc
            raise SourceMissing(f"s3://{bucket}/{key}: access refused ({code})") from exc
        except BotoCoreError as exc:
            raise TransientFetchError(f"s3://{bucket}/{key}: {exc}") from exc
        if len(data) > limit:
            raise ImageError(ErrorReason.TOO_LARGE, f"larger than {limit} bytes")
        return data
