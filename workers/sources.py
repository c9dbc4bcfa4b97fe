"""Scan sources: the one parser and validator of what a scan may name, the extension rule,
and the records a listed object or file becomes.

The CLI may scan an s3:// prefix or a local folder; the API accepts only s3:// prefixes
(``parse_s3_source``), so a caller can never make the server read its own disk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from db.items import SourceRecord
from db.models import ErrorReason
from modscan.settings import Settings

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_IP_ADDRESS = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_KEY_BYTES = 1024


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


def bucket_problem(bucket: str) -> str | None:
    """Why ``bucket`` is not a valid S3 bucket name, or None when it is."""
    if not 3 <= len(bucket) <= 63:
        return "must be 3 to 63 characters long"
    if not _BUCKET.match(bucket):
        return (
            "may hold only lowercase letters, digits, dots and hyphens, "
            "and must start and end with a letter or digit"
        )
    if ".." in bucket:
        return "must not contain two adjacent dots"
    if _IP_ADDRESS.match(bucket):
        return "must not be formatted as an IP address"
    if bucket.startswith(_RESERVED_PREFIXES) or bucket.endswith(_RESERVED_SUFFIXES):
        return "uses a prefix or suffix that S3 reserves"
    return None


def parse_source(source: str, *, allow_local: bool = True) -> ParsedSource:
    if source.startswith("s3://"):
        bucket, _, prefix = source[len("s3://") :].partition("/")
        if bucket_problem(bucket) is not None:
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


def _looks_local(source: str) -> bool:
    return (
        source.startswith(("/", "./", "../", "~", "file:", "\\"))
        or source in (".", "..")
        or re.match(r"^[A-Za-z]:[\\/]", source) is not None
    )


def parse_s3_source(source: str) -> str:
    """Validate ``s3://bucket[/prefix]`` and return it normalized, for callers that must
    never scan local paths (the API). Raises :class:`InvalidSource` saying what is wrong."""
    source = source.strip()
    if _looks_local(source):
        raise InvalidSource(
            "local paths are not accepted by the API; give an s3://bucket[/prefix] URI "
            "(use the modscan CLI to scan a folder)"
        )
    scheme, sep, rest = source.partition("://")
    if not sep or scheme.lower() != "s3":
        raise InvalidSource(f"source must be an s3://bucket[/prefix] URI, got {source!r}")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise InvalidSource("source has no bucket: expected s3://bucket[/prefix]")
    problem = bucket_problem(bucket)
    if problem is not None:
        raise InvalidSource(f"invalid S3 bucket name {bucket!r}: it {problem}")
    if _CONTROL.search(prefix):
        raise InvalidSource("S3 prefix must not contain control characters")
    if len(prefix.encode("utf-8")) > _MAX_KEY_BYTES:
        raise InvalidSource(f"S3 prefix is longer than {_MAX_KEY_BYTES} bytes")
    return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"


def is_scanned(settings: Settings, key: str) -> bool:
    """The extension rule: whether an object key names something scans should read."""
    if "*" in settings.scan_extensions:
        return True
    lowered = key.lower()
    return any(lowered.endswith(ext) for ext in settings.scan_extensions)


def _rule_out(settings: Settings, key: str, size: int | None) -> tuple[str | None, str | None]:
    """(skip_reason, error_reason) for an object the listing can rule out unread."""
    if not is_scanned(settings, key):
        suffix = Path(key).suffix or "(none)"
        return f"extension {suffix} is not scanned", None
    if size is not None and size > settings.max_bytes:
        return None, ErrorReason.TOO_LARGE
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
