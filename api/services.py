"""What the routes do beyond reading rows: validating sources, starting scans, paging
cursors and health checks. Routes stay thin over these and over ``db.browse``."""

from __future__ import annotations

import base64
import binascii
import re

from sqlalchemy import text

from api.errors import ApiError
from db.session import get_engine
from modscan.settings import Settings

# ---------------------------------------------------------------------------------------
# Scan sources

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IP_ADDRESS = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_KEY_BYTES = 1024


def invalid_source(message: str) -> ApiError:
    return ApiError(400, "invalid_source", message)


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


def _looks_local(source: str) -> bool:
    return (
        source.startswith(("/", "./", "../", "~", "file:", "\\"))
        or source in (".", "..")
        or re.match(r"^[A-Za-z]:[\\/]", source) is not None
    )


def parse_s3_source(source: str) -> str:
    """Validate ``s3://bucket[/prefix]`` and return it normalized; raise a 400 otherwise.

    The API never scans local paths: a caller could otherwise read the server's disk.
    """
    source = source.strip()
    if _looks_local(source):
        raise invalid_source(
            "local paths are not accepted by the API; give an s3://bucket[/prefix] URI "
            "(use the modscan CLI to scan a folder)"
        )
    scheme, sep, rest = source.partition("://")
    if not sep or scheme.lower() != "s3":
        raise invalid_source(f"source must be an s3://bucket[/prefix] URI, got {source!r}")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise invalid_source("source has no bucket: expected s3://bucket[/prefix]")
    problem = bucket_problem(bucket)
    if problem is not None:
        raise invalid_source(f"invalid S3 bucket name {bucket!r}: it {problem}")
    if _CONTROL.search(prefix):
        raise invalid_source("S3 prefix must not contain control characters")
    if len(prefix.encode("utf-8")) > _MAX_KEY_BYTES:
        raise invalid_source(f"S3 prefix is longer than {_MAX_KEY_BYTES} bytes")
    return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"


def submit_scan(settings: Settings, source: str, *, actor: str) -> int:
    """Create a scan and enqueue its listing; return the scan id.

    ``workers.scans`` is imported here, not at module level, so the API starts without
    loading the worker side (Celery tasks, boto3, ...).
    """
    uri = parse_s3_source(source)
    from workers.scans import BrokerUnavailable, InvalidSource, start_scan

    try:
        return start_scan(settings, uri, actor=actor)
    except InvalidSource as exc:
        raise invalid_source(str(exc) or "invalid source") from exc
    except BrokerUnavailable as exc:
        reason = (str(exc) or type(exc).__name__).rstrip(". ")
        raise ApiError(
            503,
            "broker_unavailable",
            f"the scan was not queued because the task broker is unavailable ({reason}); "
            "retry later",
            headers={"Retry-After": "30"},
        ) from exc


def check_page_size(limit: int, cap: int) -> None:
    if limit > cap:
        raise ApiError(422, "validation_error", f"query.limit: must be at most {cap}")


# ---------------------------------------------------------------------------------------
# Verdict cursors: opaque to clients, the base64 of the last verdict id seen.


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(str(last_id).encode("ascii")).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The verdict id in ``cursor``; a 400 when it is not one this API produced."""
    bad = ApiError(400, "invalid_cursor", "cursor is malformed: pass next_cursor back as is")
    if not cursor or len(cursor) > 64:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = raw.decode("ascii")
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise bad from exc
    if not decoded.isdigit() or len(decoded) > 19:
        raise bad
    value = int(decoded)
    if value < 1 or encode_cursor(value) != cursor.rstrip("="):
        raise bad
    return value


# ---------------------------------------------------------------------------------------
# Health


def _short(exc: BaseException) -> str:
    text_ = str(exc).strip().splitlines()
    detail = text_[0] if text_ else ""
    name = type(exc).__name__
    return f"{name}: {detail[:200]}" if detail else name


def check_database(settings: Settings) -> str:
    try:
        with get_engine(settings.resolved_database_url).connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means "not ok"; say which
        return f"unavailable: {_short(exc)}"
    return "ok"


def check_broker(settings: Settings, timeout_s: float = 2.0) -> str:
    url = settings.broker_url
    if not url:
        return "embedded"
    scheme = url.partition("://")[0].lower()
    if scheme not in ("redis", "rediss"):
        return f"unchecked ({scheme} broker)"
    import redis

    try:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s
        )
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # connection refused, auth, bad URL: all "not ok"
        return f"unavailable: {_short(exc)}"
    return "ok"
