"""Webhook signatures: HMAC-SHA256 over ``f"{timestamp}.{body}"``, sent as ``v1=<hex>``.

The timestamp (Unix seconds, in ``X-Modscan-Timestamp``) is signed with the body, so a
captured request cannot be replayed later than the receiver's tolerance. This module needs
only the standard library: consumers may copy :func:`verify_signature` as it is.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SCHEME = "v1"


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def signature(secret: str | bytes, timestamp: str | int, body: str | bytes) -> str:
    """The ``X-Modscan-Signature`` header value for one request."""
    message = f"{timestamp}.".encode() + _as_bytes(body)
    digest = hmac.new(_as_bytes(secret), message, hashlib.sha256).hexdigest()
    return f"{SCHEME}={digest}"


def verify_signature(
    secret: str | bytes,
    timestamp: str,
    body: str | bytes,
    header: str,
    tolerance_s: float = 300,
    *,
    now: float | None = None,
) -> bool:
    """True if ``header`` signs ``timestamp`` and ``body`` with ``secret`` and the timestamp
    is within ``tolerance_s`` of now. Pass the raw request body, before any JSON parsing.

    The header may list several comma-separated signatures (as during a secret rotation);
    one match is enough. Comparisons are constant-time.
    """
    try:
        sent_at = int(timestamp)
    except (TypeError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - sent_at) > tolerance_s:
        return False
    expected = signature(secret, timestamp, body)
    found = False
    for candidate in header.split(","):
        found |= hmac.compare_digest(candidate.strip().encode(), expected.encode())
    return found
