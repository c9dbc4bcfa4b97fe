"""What the review routes and the review page share beyond ``db.reviews``: who may see
scores, how review errors read over HTTP, and fetching an image's bytes for the thumbnail.

The thumbnail is served through the API rather than by a redirect to a presigned S3 URL:
the bytes are checked against the verdict's sha256, so a reviewer sees exactly what the
model scored (an unversioned object overwritten since is refused, not shown); it works for
``file://`` sources and for object stores the reviewer's browser cannot reach; and access
stays behind the same key and role checks as the rest of the queue, with no URL to leak.
The cost is the bytes passing through the API, which caps them at ``max_bytes``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session

from api.deps import Principal
from api.errors import ApiError, not_found
from db.models import Image, ReviewState, Role, Verdict
from db.policy import current_policy
from db.review_queue import image_sources
from db.reviews import ReviewConflict, ReviewForbidden, ReviewNotFound, get_review
from modscan.settings import Settings

MEDIA_TYPES = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
    "AVIF": "image/avif",
}
MAX_SOURCES_TRIED = 5


def scores_hidden(session: Session, principal: Principal) -> bool:
    """Under a blind policy reviewers see no score or label; auditors and admins do."""
    if principal.role != Role.REVIEWER:
        return False
    policy = current_policy(session)
    return bool(policy is not None and policy.blind_review)


def claimable_states(principal: Principal) -> tuple[str, ...]:
    """Reviewers work the open queue; admins also take escalated reviews."""
    if principal.role == Role.ADMIN:
        return (ReviewState.OPEN, ReviewState.ESCALATED)
    return (ReviewState.OPEN,)


def review_error(exc: Exception) -> ApiError:
    """The HTTP error for a refusal from ``db.reviews``."""
    if isinstance(exc, ReviewNotFound):
        return not_found(str(exc).removeprefix("no ") or "review")
    if isinstance(exc, ReviewForbidden):
        return ApiError(403, "forbidden", str(exc))
    if isinstance(exc, ReviewConflict):
        return ApiError(409, "conflict", str(exc))
    raise exc


@dataclass(frozen=True)
class ImageBytes:
    data: bytes
    media_type: str


@dataclass(frozen=True)
class _Location:
    scheme: str
    bucket: str
    key: str
    version_id: str | None


def _fetcher(request: Request, settings: Settings) -> Any:
    """One fetcher (and boto3 client) per app; the worker module is imported only here."""
    from workers.fetch import Fetcher

    fetcher = getattr(request.app.state, "review_fetcher", None)
    if fetcher is None:
        fetcher = Fetcher(settings)
        request.app.state.review_fetcher = fetcher
    return fetcher


def review_image(
    request: Request, session: Session, settings: Settings, *, verdict_id: int
) -> ImageBytes:
    """The bytes of a reviewed verdict's image, from the first source that still holds
    them unchanged; 404 when none does, 503 when only transient failures stood in the way."""
    review = get_review(session, verdict_id=verdict_id)
    if review is None:
        raise not_found(f"review for verdict {verdict_id}")
    sha256 = session.get_one(Verdict, verdict_id).image_sha256
    image = session.get(Image, sha256)
    media_type = MEDIA_TYPES.get(image.format if image else "", "application/octet-stream")
    locations = [
        _Location(s.scheme, s.bucket, s.key, s.version_id)
        for s in image_sources(session, sha256=sha256, limit=MAX_SOURCES_TRIED)
    ]
    session.close()  # no connection held while the object store answers

    from workers.classifier.decode import ImageError
    from workers.fetch import SourceMissing, TransientFetchError

    fetcher = _fetcher(request, settings)
    transient: str | None = None
    for where in locations:
        try:
            data: bytes = fetcher.fetch(where.scheme, where.bucket, where.key, where.version_id)
        except (SourceMissing, ImageError):
            continue
        except TransientFetchError as exc:
            transient = str(exc)
            continue
        if hashlib.sha256(data).hexdigest() == sha256:
            return ImageBytes(data=data, media_type=media_type)
    if transient is not None:
        raise ApiError(
            503,
            "service_unavailable",
            f"the image store did not answer ({transient}); retry later",
            headers={"Retry-After": "5"},
        )
    raise not_found(f"the bytes of image {sha256} (no source still holds them unchanged)")
