"""The review queue: list it, lease an item, decide it, and fetch its image.

Reviewers and admins claim and decide; auditors may read the queue and the images; under a
blind policy reviewers get no scores. A claim is a lease of ``review_lease_s`` seconds during
which nobody else can claim or decide the item.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from sqlalchemy.orm import Session

from api.deps import Principal, Reviewer, ReviewReader, SessionDep, SettingsDep
from api.errors import ApiError, not_found
from api.pagination import decode_cursor, encode_cursor, page_size
from api.review_schemas import (
    ReviewCountsOut,
    ReviewDecisionIn,
    ReviewOut,
    ReviewQueueOut,
    ReviewStateName,
)
from api.reviewing import (
    claimable_states,
    review_error,
    review_image,
    scores_hidden,
)
from api.schemas import ErrorOut
from db.models import ReviewState, Role, as_utc
from db.review_queue import queue_entry, remaining, review_queue
from db.reviews import ReviewConflict, ReviewForbidden, ReviewNotFound, claim, claim_next, decide

router = APIRouter(prefix="/review", tags=["review"])

VerdictId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The verdict under review")]
_REFUSALS = (ReviewNotFound, ReviewConflict, ReviewForbidden)


@router.get(
    "/queue",
    response_model=ReviewQueueOut,
    summary="Reviews in a state, oldest first, with cursor pagination",
    responses={400: {"model": ErrorOut}, 403: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)
def read_queue(
    principal: ReviewReader,
    session: SessionDep,
    settings: SettingsDep,
    state: Annotated[ReviewStateName, Query(description="open, escalated or decided")] = "open",
    model_version: Annotated[str | None, Query(max_length=64)] = None,
    scan_id: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="Only reviews of this scan's items")
    ] = None,
    since: Annotated[
        datetime | None,
        Query(description="ISO 8601; reviews opened at or after (no offset means UTC)"),
    ] = None,
    limit: Annotated[
        int | None,
        Query(
            ge=1,
            description="Page size (default 100, or the cap when lower); more than the "
            "server's cap (default 500) is a 422",
        ),
    ] = None,
    cursor: Annotated[
        str | None, Query(max_length=64, description="next_cursor of the previous page")
    ] = None,
) -> ReviewQueueOut:
    limit = page_size(settings, limit)
    page = review_queue(
        session,
        state=state,
        limit=limit,
        after_id=decode_cursor(cursor) if cursor is not None else None,
        model_version=model_version,
        since=as_utc(since),
        scan_id=scan_id,
    )
    blind = scores_hidden(session, principal)
    return ReviewQueueOut(
        items=[ReviewOut.build(entry, blind=blind) for entry in page.items],
        next_cursor=encode_cursor(page.items[-1].review.id) if page.has_more else None,
        remaining=ReviewCountsOut(**remaining(session)),
    )


@router.post(
    "/claim",
    response_model=ReviewOut,
    summary="Lease the oldest review nobody holds (204 when there is none)",
    responses={204: {"description": "Nothing left to review"}, 403: {"model": ErrorOut}},
)
def claim_next_review(
    principal: Reviewer,
    session: SessionDep,
    settings: SettingsDep,
    state: Annotated[
        Literal["open", "escalated"],
        Query(description="escalated: admins only, the reviews passed up to them"),
    ] = "open",
) -> ReviewOut | Response:
    if state == ReviewState.ESCALATED and principal.role != Role.ADMIN:
        raise ApiError(403, "forbidden", "only admins work the escalated queue")
    review = claim_next(
        session, actor=principal.actor, lease_s=settings.review_lease_s, states=(state,)
    )
    if review is None:
        return Response(status_code=204)
    session.commit()
    return _out(session, principal, review.verdict_id)


@router.post(
    "/{verdict_id}/claim",
    response_model=ReviewOut,
    summary="Lease this verdict's review",
    responses={404: {"model": ErrorOut}, 409: {"model": ErrorOut}},
)
def claim_review(
    principal: Reviewer, session: SessionDep, settings: SettingsDep, verdict_id: VerdictId
) -> ReviewOut:
    try:
        claim(
            session,
            verdict_id=verdict_id,
            actor=principal.actor,
            lease_s=settings.review_lease_s,
            states=claimable_states(principal),
        )
    except _REFUSALS as exc:
        raise review_error(exc) from exc
    session.commit()
    return _out(session, principal, verdict_id)


@router.post(
    "/{verdict_id}",
    response_model=ReviewOut,
    summary="Decide this verdict's review: confirm_ai, confirm_real or escalate",
    responses={
        403: {"model": ErrorOut},
        404: {"model": ErrorOut},
        409: {"model": ErrorOut},
        422: {"model": ErrorOut},
    },
)
def decide_review(
    principal: Reviewer,
    session: SessionDep,
    settings: SettingsDep,
    verdict_id: VerdictId,
    body: ReviewDecisionIn,
) -> ReviewOut:
    try:
        decide(
            session,
            verdict_id=verdict_id,
            decision=body.decision,
            note=body.note,
            actor=principal.actor,
            outbox_targets=settings.outbox_targets,
            may_decide_escalated=principal.role == Role.ADMIN,
        )
    except _REFUSALS as exc:
        raise review_error(exc) from exc
    session.commit()
    return _out(session, principal, verdict_id)


@router.get(
    "/{verdict_id}/image",
    response_class=Response,
    summary="The image under review, checked against its sha256",
    responses={
        200: {"content": {"image/jpeg": {}, "image/png": {}}, "description": "The bytes"},
        404: {"model": ErrorOut},
        503: {"model": ErrorOut},
    },
)
def read_review_image(
    _principal: ReviewReader,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    verdict_id: VerdictId,
) -> Response:
    image = review_image(request, session, settings, verdict_id=verdict_id)
    return Response(
        content=image.data,
        media_type=image.media_type,
        headers={
            "Cache-Control": "private, max-age=60",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )


def _out(session: Session, principal: Principal, verdict_id: int) -> ReviewOut:
    entry = queue_entry(session, verdict_id=verdict_id)
    if entry is None:
        raise not_found(f"review for verdict {verdict_id}")
    return ReviewOut.build(entry, blind=scores_hidden(session, principal))
