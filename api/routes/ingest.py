"""Ingest webhooks: MinIO bucket notifications and EventBridge S3 events, pushed to modscan.

Mounted outside ``/v1``'s router: senders authenticate with ``MODSCAN_INGEST_TOKEN``, not with
API keys. Off (503) until that token is set.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import APIKeyHeader

from api.deps import SettingsDep
from api.ingest import (
    EVENTBRIDGE_SOURCE,
    MINIO_WEBHOOK_SOURCE,
    IngestOut,
    check_ingest_token,
    ingest_event,
)
from api.schemas import ErrorOut

_token_header = APIKeyHeader(
    name="Authorization",
    scheme_name="IngestToken",
    description="`Bearer <MODSCAN_INGEST_TOKEN>`, or the bare token",
    auto_error=False,
)


def require_ingest_token(
    settings: SettingsDep, authorization: Annotated[str | None, Depends(_token_header)]
) -> None:
    """Runs before the body is read: a sender without the token gets nothing parsed."""
    check_ingest_token(settings, authorization)


async def raw_body(request: Request) -> bytes:
    """The body as sent: parsing (and its 400s) is parse_message's job, not FastAPI's."""
    return await request.body()


RawBody = Annotated[bytes, Depends(raw_body)]

router = APIRouter(
    prefix="/v1/ingest", tags=["ingest"], dependencies=[Depends(require_ingest_token)]
)

_RESPONSES: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorOut, "description": "The body is not an event modscan understands"},
    401: {"model": ErrorOut, "description": "Missing or wrong ingest token"},
    503: {
        "model": ErrorOut,
        "description": "No ingest token configured (`ingest_disabled`) or no task broker",
    },
}


@router.post(
    "/minio",
    status_code=202,
    response_model=IngestOut,
    summary="Receive a MinIO webhook bucket notification",
    responses=_RESPONSES,
)
def ingest_minio(settings: SettingsDep, body: RawBody) -> IngestOut:
    """The body MinIO's webhook target posts (``EventName``, ``Key``, ``Records``). New
    objects are registered under the ``minio-webhook`` stream scan and queued."""
    return ingest_event(settings, body, MINIO_WEBHOOK_SOURCE)


@router.post(
    "/eventbridge",
    status_code=202,
    response_model=IngestOut,
    summary="Receive an EventBridge S3 event (API destination)",
    responses=_RESPONSES,
)
def ingest_eventbridge(settings: SettingsDep, body: RawBody) -> IngestOut:
    """An EventBridge event from S3 (``"source": "aws.s3"``). ``Object Created`` objects are
    registered under the ``eventbridge`` stream scan and queued."""
    return ingest_event(settings, body, EVENTBRIDGE_SOURCE)
