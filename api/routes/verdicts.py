"""Verdicts: filter and page through every model answer stored."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import Reader, SessionDep, SettingsDep
from api.pagination import DEFAULT_PAGE_SIZE, decode_cursor, encode_cursor, page_size
from api.schemas import ErrorOut, LabelName, VerdictOut, VerdictPageOut
from db.browse import list_verdicts
from db.models import as_utc

router = APIRouter(prefix="/verdicts", tags=["verdicts"])


@router.get(
    "",
    response_model=VerdictPageOut,
    summary="List verdicts, oldest id first, with cursor pagination",
    responses={400: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)
def read_verdicts(
    session: SessionDep,
    settings: SettingsDep,
    caller: Reader,
    scan_id: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="Only verdicts of this scan's items")
    ] = None,
    label: Annotated[LabelName | None, Query(description="ai or real")] = None,
    since: Annotated[
        datetime | None,
        Query(description="ISO 8601; created at or after (no offset means UTC)"),
    ] = None,
    until: Annotated[
        datetime | None, Query(description="ISO 8601; created before (no offset means UTC)")
    ] = None,
    model_name: Annotated[str | None, Query(max_length=128)] = None,
    model_version: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[
        int,
        Query(ge=1, description="Page size; more than the server's cap (default 500) is a 422"),
    ] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[
        str | None, Query(max_length=64, description="next_cursor of the previous page")
    ] = None,
) -> VerdictPageOut:
    limit = page_size(settings, limit)
    page = list_verdicts(
        session,
        limit=limit,
        after_id=decode_cursor(cursor) if cursor is not None else None,
        scan_id=scan_id,
        label=label,
        since=as_utc(since),
        until=as_utc(until),
        model_name=model_name,
        model_version=model_version,
        owner=caller.owner_filter,
    )
    next_cursor = encode_cursor(page.items[-1].id) if page.has_more else None
    return VerdictPageOut(items=[VerdictOut.build(v) for v in page.items], next_cursor=next_cursor)
