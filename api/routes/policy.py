"""The moderation policy: read it, change it (admins), and try a change on past verdicts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from api.admin_schemas import DryRunOut, PolicyIn, PolicyOut
from api.deps import Admin, AnyRole, Auditor, SessionDep
from api.errors import ApiError, not_found
from api.schemas import ErrorOut
from db.models import as_utc
from db.policy import PolicyConflict, PolicyDraft, change_policy, current_policy, dry_run

router = APIRouter(prefix="/policy", tags=["policy"])


def _draft(body: PolicyIn) -> PolicyDraft:
    if body.low > body.high:
        raise ApiError(422, "validation_error", "body: low must not be above high")
    return PolicyDraft(**body.model_dump())


@router.get(
    "",
    response_model=PolicyOut,
    summary="The policy in force",
    responses={404: {"model": ErrorOut}},
)
def read_policy(session: SessionDep, _caller: AnyRole) -> PolicyOut:
    policy = current_policy(session)
    if policy is None:
        raise not_found("policy (none yet: the first scan creates it from the model card)")
    return PolicyOut.build(policy)


@router.post(
    "",
    status_code=201,
    response_model=PolicyOut,
    summary="Put a new policy version in force (admin)",
    responses={409: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)
def update_policy(body: PolicyIn, session: SessionDep, caller: Admin) -> PolicyOut:
    try:
        policy = change_policy(session, _draft(body), actor=caller.actor)
    except PolicyConflict as exc:
        raise ApiError(409, "conflict", str(exc)) from exc
    session.commit()
    return PolicyOut.build(policy)


@router.post(
    "/dry-run",
    response_model=DryRunOut,
    summary="How past verdicts' actions and the review queue would change under a draft",
    responses={422: {"model": ErrorOut}},
)
def dry_run_policy(
    body: PolicyIn,
    session: SessionDep,
    _caller: Auditor,
    since: Annotated[datetime | None, Query(description="Only verdicts created since")] = None,
    model_version: Annotated[str | None, Query(max_length=64)] = None,
) -> DryRunOut:
    run = dry_run(session, _draft(body), since=as_utc(since), model_version=model_version)
    return DryRunOut.build(run)
