"""The audit trail: filter it, and check its hash chain (auditors and admins)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from api.admin_schemas import AuditEventOut, AuditPageOut, ChainOut
from api.deps import Auditor, SessionDep, SettingsDep
from api.pagination import DEFAULT_PAGE_SIZE, decode_cursor, encode_cursor, page_size
from api.schemas import ErrorOut
from db.audit import AuditFilter, list_events, verify_chain

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get(
    "",
    response_model=AuditPageOut,
    summary="Audit events, oldest first, filtered by subject, actor, action and time",
    responses={400: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)
def read_audit(
    session: SessionDep,
    settings: SettingsDep,
    _caller: Auditor,
    subject_type: Annotated[str | None, Query(max_length=32)] = None,
    subject_id: Annotated[str | None, Query(max_length=128)] = None,
    actor: Annotated[str | None, Query(max_length=128)] = None,
    action: Annotated[str | None, Query(max_length=32)] = None,
    since: Annotated[datetime | None, Query(description="ISO 8601, inclusive")] = None,
    until: Annotated[datetime | None, Query(description="ISO 8601, exclusive")] = None,
    limit: Annotated[int, Query(ge=1)] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> AuditPageOut:
    limit = page_size(settings, limit)
    where = AuditFilter(
        subject_type=subject_type,
        subject_id=subject_id,
        actor=actor,
        action=action,
        since=since,
        until=until,
    )
    after = decode_cursor(cursor) if cursor is not None else None
    rows, more = list_events(session, where, limit=limit, after_id=after)
    return AuditPageOut(
        items=[AuditEventOut.build(e) for e in rows],
        next_cursor=encode_cursor(rows[-1].id) if more else None,
    )


@router.get("/verify", response_model=ChainOut, summary="Walk the hash chain")
def verify_audit(session: SessionDep, _caller: Auditor) -> ChainOut:
    report = verify_chain(session)
    return ChainOut(
        ok=report.ok, checked=report.checked, broken_at=report.broken_at, reason=report.reason
    )
