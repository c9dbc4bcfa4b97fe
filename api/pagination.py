"""Paging, the same on every paged route: the page-size cap and opaque cursors."""

from __future__ import annotations

import base64
import binascii

from api.errors import ApiError
from modscan.settings import Settings

DEFAULT_PAGE_SIZE = 100


def page_size(settings: Settings, limit: int | None) -> int:
    """The page size to use: ``limit``, or the default (the cap when lower); a 422 over the cap."""
    cap = settings.api_max_page_size
    if limit is None:
        return min(DEFAULT_PAGE_SIZE, cap)
    if limit > cap:
        raise ApiError(422, "validation_error", f"query.limit: must be at most {cap}")
    return limit


# Cursors are opaque to clients: the base64 of the last row id seen.


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(str(last_id).encode("ascii")).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The row id in ``cursor``; a 400 when it is not one this API produced."""
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
