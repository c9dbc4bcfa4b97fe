"""What the API hands the workers: scans to list and events' objects to classify.

``workers`` modules are imported inside the functions, so the API starts without loading
the worker side (Celery, boto3, ...). A broker that cannot be reached is one 503 everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from api.errors import ApiError
from modscan.settings import Settings

if TYPE_CHECKING:
    from workers.ingest.messages import SourceRef


def broker_unavailable(what: str, reason: str) -> ApiError:
    """The one answer when the task broker cannot take work: 503, retry later."""
    return ApiError(
        503,
        "broker_unavailable",
        f"the {what} was not queued because the task broker is unavailable ({reason}); retry later",
        headers={"Retry-After": "30"},
    )


def _reason(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__).rstrip(". ")


def _invalid_source(exc: Exception) -> ApiError:
    return ApiError(400, "invalid_source", str(exc) or "invalid source")


def s3_source(source: str) -> str:
    """``source`` normalized when it is a valid ``s3://bucket[/prefix]``; a 400 otherwise.

    The API never scans local paths: a caller could otherwise read the server's disk.
    """
    from workers.sources import InvalidSource, parse_s3_source

    try:
        return parse_s3_source(source)
    except InvalidSource as exc:
        raise _invalid_source(exc) from exc


def submit_scan(settings: Settings, source: str, *, actor: str) -> int:
    """Validate an s3:// source, create its scan and enqueue its listing; return the id."""
    from workers.dispatch import BrokerUnavailable, InvalidSource, start_scan

    uri = s3_source(source)
    try:
        return start_scan(settings, uri, actor=actor)
    except InvalidSource as exc:
        raise _invalid_source(exc) from exc
    except BrokerUnavailable as exc:
        raise broker_unavailable("scan", _reason(exc)) from exc


def enqueue_refs(settings: Settings, refs: Sequence[SourceRef], *, stream_source: str) -> int:
    """Register an event's objects under the ``stream_source`` stream scan and enqueue the
    new ones; return how many were new."""
    if not settings.broker_url:
        raise broker_unavailable("event", "no broker configured: MODSCAN_BROKER_URL is unset")
    from workers.dispatch import BrokerUnavailable, Enqueuer
    from workers.ingest.register import ingest_refs, stream_scan_id

    scan_id = stream_scan_id(settings, stream_source)
    try:
        return ingest_refs(settings, refs, stream_scan_id=scan_id, dispatch=Enqueuer(settings))
    except BrokerUnavailable as exc:
        raise broker_unavailable("event", _reason(exc)) from exc
