"""Parsing scan sources and listing them page by page (S3 prefixes and local folders)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from db.items import SourceRecord
from modscan.settings import Settings

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


class InvalidSource(ValueError):
    """The scan source is not an s3:// prefix or an existing folder."""


@dataclass(frozen=True)
class ParsedSource:
    scheme: str  # s3 | file
    bucket: str  # "" for files
    prefix: str  # key prefix, or the folder's absolute path

    @property
    def uri(self) -> str:
        if self.scheme == "file":
            return f"file://{self.prefix}"
        return f"s3://{self.bucket}/{self.prefix}"

    @property
    def kind(self) -> str:
        return "folder" if self.scheme == "file" else "prefix"


def parse_source(source: str, *, allow_local: bool = True) -> ParsedSource:
    if source.startswith("s3://"):
        bucket, _, prefix = source[len("s3://") :].partition("/")
        if not _BUCKET.match(bucket):
            raise InvalidSource(f"{bucket!r} is not a valid S3 bucket name")
        return ParsedSource("s3", bucket, prefix)
    if "://" in source and not source.startswith("file://"):
        raise InvalidSource(f"unsupported source {source!r}: use s3://bucket/prefix or a folder")
    if not allow_local:
        raise InvalidSource("only s3://bucket/prefix sources are accepted here")
    path = Path(source.removeprefix("file://")).expanduser().resolve()
    if not path.is_dir():
        raise InvalidSource(f"{path} is not a folder")
    return ParsedSource("file", "", str(path))


def _rule_out(settings: Settings, key: str, size: int | None) -> tuple[str | None, str | None]:
    """(skip_reason, error_reason) for an object the listing can rule out unread."""
    if not settings.scans_extension(key):
        suffix = Path(key).suffix or "(none)"
        return f"extension {suffix} is not scanned", None
    if size is not None and size > settings.max_bytes:
        return None, "too_large"
    return None, None


def s3_record(settings: Settings, bucket: str, obj: dict[str, Any]) -> SourceRecord:
    key = obj["Key"]
    size = obj.get("Size")
    etag = str(obj.get("ETag", "")).strip('"') or None
    skip, error = _rule_out(settings, key, size)
    return SourceRecord(
        scheme="s3",
        bucket=bucket,
        key=key,
        version_id=obj.get("VersionId"),
        etag=etag,
        size=size,
        version=obj.get("VersionId") or etag or "",
        skip_reason=skip,
        error_reason=error,
    )


# Small first pages get the model busy sooner; later pages amortise the round trips.
PAGE_SIZES = (128, 256, 512, 1000)


def page_size(page: int) -> int:
    return PAGE_SIZES[min(page, len(PAGE_SIZES) - 1)]


def list_s3_pages(
    settings: Settings, client: Any, source: ParsedSource, *, start_after: str | None = None
) -> Iterator[tuple[list[SourceRecord], str]]:
    """Stream ListObjectsV2 pages as (records, last key): memory stays flat."""
    kwargs: dict[str, Any] = {"Bucket": source.bucket, "Prefix": source.prefix}
    if start_after:
        kwargs["StartAfter"] = start_after
    page = 0
    while True:
        response = client.list_objects_v2(**kwargs, MaxKeys=page_size(page))
        contents = response.get("Contents", [])
        if contents:
            records = [s3_record(settings, source.bucket, obj) for obj in contents]
            yield records, contents[-1]["Key"]
        if not response.get("IsTruncated"):
            return
        kwargs.pop("StartAfter", None)
        kwargs["ContinuationToken"] = response["NextContinuationToken"]
        page += 1


def file_record(settings: Settings, path: Path) -> SourceRecord | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    key = str(path)
    skip, error = _rule_out(settings, key, stat.st_size)
    return SourceRecord(
        scheme="file",
        bucket="",
        key=key,
        size=stat.st_size,
        version=f"{stat.st_mtime_ns}-{stat.st_size}",
        skip_reason=skip,
        error_reason=error,
    )


def list_folder_pages(
    settings: Settings, source: ParsedSource
) -> Iterator[tuple[list[SourceRecord], str]]:
    """Walk a folder recursively in a stable order, a page of files at a time."""
    page: list[SourceRecord] = []
    pages = 0
    for root, dirs, files in os.walk(source.prefix):
        dirs.sort()
        for name in sorted(files):
            record = file_record(settings, Path(root) / name)
            if record is None:
                continue
            page.append(record)
            if len(page) >= page_size(pages):
                yield page, page[-1].key
                page = []
                pages += 1
    if page:
        yield page, page[-1].key
