"""What the ingest webhooks do: check the shared token, then register and enqueue the objects
an event names. Bodies are parsed by ``workers.ingest.messages.parse_message``, the same
function the SQS and Redis consumers use.

``workers`` modules are imported inside the functions, so the API starts without them.
"""

from __future__ import annotations

import hmac
import logging

from pydantic import BaseModel, Field

from api.enqueue import enqueue_refs
from api.errors import ApiError
from modscan.settings import Settings

log = logging.getLogger(__name__)

# Stream scans (kind "stream") that the webhooks file their objects under.
MINIO_WEBHOOK_SOURCE = "minio-webhook"
EVENTBRIDGE_SOURCE = "eventbridge"


class IngestOut(BaseModel):
    accepted: int = Field(description="Objects the event named (0 for removals and test events)")
    new: int = Field(description="Of those, the ones not seen before: enqueued for scanning")


def _presented_tokens(authorization: str) -> list[str]:
    """The header as sent (old MinIO releases), and what follows ``Bearer `` if present."""
    value = authorization.strip()
    scheme, _, rest = value.partition(" ")
    if scheme.lower() == "bearer" and rest.strip():
        return [rest.strip(), value]
    return [value]


def check_ingest_token(settings: Settings, authorization: str | None) -> None:
    """Raise 503 when no ingest token is configured, 401 unless the header carries it.

    MinIO's webhook sends its ``auth_token`` as ``Authorization: Bearer <token>`` (releases
    before 2022 sent the bare token): both are accepted.
    """
    expected = (settings.ingest_token or "").strip()
    if not expected:
        raise ApiError(
            503,
            "ingest_disabled",
            "ingest webhooks are turned off: set MODSCAN_INGEST_TOKEN to turn them on",
        )
    given = _presented_tokens(authorization) if authorization else []
    wanted = expected.encode("utf-8")
    if not any(hmac.compare_digest(token.encode("utf-8"), wanted) for token in given):
        raise ApiError(
            401,
            "unauthorized",
            "missing or wrong ingest token: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )


def ingest_event(settings: Settings, body: bytes, source: str) -> IngestOut:
    """Register the objects one event body names under the ``source`` stream scan, and
    enqueue the new ones. A body that is no known event is a 400; nothing is written."""
    from workers.ingest.messages import InvalidMessage, parse_message

    try:
        refs = parse_message(body)
    except InvalidMessage as exc:
        log.warning(
            "refusing invalid %s event: %s; body: %.500s",
            source,
            exc,
            body.decode("utf-8", errors="replace"),
        )
        raise ApiError(400, "invalid_message", str(exc)) from exc
    new = enqueue_refs(settings, refs, stream_source=source)
    return IngestOut(accepted=len(refs), new=new)
