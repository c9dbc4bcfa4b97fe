"""The review queue: verdicts the policy sent to people, leased one at a time, decided once.

Plain functions over a session, keyword arguments only; they never commit.

A reviewer *claims* a review for ``lease_s`` seconds; while the lease is live nobody else can
claim or decide it, and once it expires anyone may take it over. Every change of hands is a
guarded ``UPDATE ... WHERE`` whose row count says whether it won, so two reviewers racing for
the same row cannot both get it, on PostgreSQL or SQLite; PostgreSQL also skips rows other
transactions hold (``FOR UPDATE SKIP LOCKED``) when picking the next one, instead of queueing
behind them. Deciding writes an audit event and an outbox event in the caller's transaction.
Reviews never touch the verdict's score or label: a decision lives on the review row.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from db.audit import AuditActions, append_event
from db.models import Decision, Review, ReviewState, Verdict, as_utc, utcnow
from db.outbox import Topics, add_event
from db.upsert import insert_ignore

_CLAIM_TRIES = 5  # guarded updates lost to other reviewers before giving up on a round
_INSERT_CHUNK = 500  # rows per INSERT (SQLite caps bound parameters per statement)


class ReviewNotFound(LookupError):
    """No review for this verdict (unknown verdict, or one the policy did not send)."""


class ReviewConflict(RuntimeError):
    """Someone else holds a live lease on it, or it is already decided."""


class ReviewForbidden(PermissionError):
    """Escalated reviews are decided by an admin only."""


def _iso(moment: datetime | None) -> str | None:
    aware = as_utc(moment)
    return aware.isoformat() if aware is not None else None


def open_reviews(session: Session, verdict_ids: Sequence[int]) -> int:
    """Open a review for each verdict that has none yet; the number of new reviews."""
    if not verdict_ids:
        return 0
    now = utcnow()
    rows = [
        {"verdict_id": verdict_id, "state": ReviewState.OPEN, "created_at": now}
        for verdict_id in dict.fromkeys(verdict_ids)
    ]
    opened = 0
    table = Review.__table__
    for start in range(0, len(rows), _INSERT_CHUNK):
        # RETURNING lists only the rows inserted (both databases), where row counts of
        # INSERTs are not reliable across drivers.
        chunk = rows[start : start + _INSERT_CHUNK]
        statement = insert_ignore(session, table, ["verdict_id"]).values(chunk)
        opened += len(session.execute(statement.returning(table.c.id)).all())
    return opened


def get_review(session: Session, *, verdict_id: int) -> Review | None:
    return session.scalar(select(Review).where(Review.verdict_id == verdict_id))


def _claimable(actor: str, now: datetime) -> Any:
    """Unclaimed, lease expired, or already this actor's."""
    return or_(
        Review.claimed_by.is_(None),
        Review.claim_expires_at.is_(None),
        Review.claim_expires_at < now,
        Review.claimed_by == actor,
    )


def _take(
    session: Session, review: Review, *, states: Collection[str], actor: str, lease_s: float
) -> bool:
    """Lease ``review`` with a guarded update; False when another reviewer got there first.

    A new holder is audited; renewing one's own lease is not.
    """
    now = utcnow()
    before = {"claimed_by": review.claimed_by, "claim_expires_at": _iso(review.claim_expires_at)}
    expires = now + timedelta(seconds=lease_s)
    result = session.execute(
        update(Review)
        .where(Review.id == review.id, Review.state.in_(states), _claimable(actor, now))
        .values(claimed_by=actor, claim_expires_at=expires)
        .execution_options(synchronize_session=False)
    )
    if int(getattr(result, "rowcount", 0)) != 1:
        return False
    session.refresh(review)
    if before["claimed_by"] != actor:
        append_event(
            session,
            actor=actor,
            action=AuditActions.REVIEW_CLAIMED,
            subject_type="verdict",
            subject_id=review.verdict_id,
            before=before,
            after={"claimed_by": actor, "claim_expires_at": _iso(expires)},
        )
    return True


def claim_next(
    session: Session,
    *,
    actor: str,
    lease_s: float,
    states: Collection[str] = (ReviewState.OPEN,),
) -> Review | None:
    """Lease the oldest review in ``states`` nobody else holds; None when there is none.

    A review this actor already holds comes first, so reloading the page shows the same item
    rather than leaving it leased and taking another.
    """
    held = session.scalar(
        select(Review)
        .where(
            Review.state.in_(states),
            Review.claimed_by == actor,
            Review.claim_expires_at >= utcnow(),
        )
        .order_by(Review.created_at, Review.id)
        .limit(1)
    )
    if held is not None and _take(session, held, states=states, actor=actor, lease_s=lease_s):
        return held
    postgres = session.get_bind().dialect.name == "postgresql"
    for _ in range(_CLAIM_TRIES):
        query = (
            select(Review)
            .where(Review.state.in_(states), _claimable(actor, utcnow()))
            .order_by(Review.created_at, Review.id)
            .limit(1)
            .execution_options(populate_existing=True)
        )
        if postgres:
            query = query.with_for_update(skip_locked=True)
        candidate = session.scalar(query)
        if candidate is None:
            return None
        if _take(session, candidate, states=states, actor=actor, lease_s=lease_s):
            return candidate
    return None


def _live_holder(review: Review, actor: str) -> str | None:
    """Who else holds a live lease on it, if anyone."""
    expires = as_utc(review.claim_expires_at)
    if review.claimed_by and review.claimed_by != actor and expires and expires >= utcnow():
        return review.claimed_by
    return None


def _locked_review(session: Session, verdict_id: int) -> Review:
    query = select(Review).where(Review.verdict_id == verdict_id).with_for_update()
    review = session.scalar(query.execution_options(populate_existing=True))
    if review is None:
        raise ReviewNotFound(f"no review for verdict {verdict_id}")
    return review


def claim(
    session: Session,
    *,
    verdict_id: int,
    actor: str,
    lease_s: float,
    states: Collection[str] = (ReviewState.OPEN,),
) -> Review:
    """Lease this verdict's review; ReviewConflict when it is held by someone else or not in
    ``states`` (decided, or escalated for a non-admin)."""
    review = _locked_review(session, verdict_id)
    if review.state not in states:
        raise ReviewConflict(f"the review of verdict {verdict_id} is {review.state}")
    holder = _live_holder(review, actor)
    if holder is not None:
        raise ReviewConflict(f"the review of verdict {verdict_id} is claimed by {holder}")
    if not _take(session, review, states=states, actor=actor, lease_s=lease_s):
        raise ReviewConflict(f"the review of verdict {verdict_id} was just claimed by another")
    return review


def _snapshot(review: Review) -> dict[str, Any]:
    return {
        "state": review.state,
        "decision": review.decision,
        "note": review.note,
        "claimed_by": review.claimed_by,
        "decided_by": review.decided_by,
        "decided_at": _iso(review.decided_at),
    }


def decide(
    session: Session,
    *,
    verdict_id: int,
    decision: str,
    note: str | None,
    actor: str,
    outbox_targets: Sequence[str],
    may_decide_escalated: bool = False,
) -> Review:
    """Record a decision: confirm_ai or confirm_real close the review, escalate passes it to
    an admin (``may_decide_escalated``) and releases the lease.

    Refused with ReviewConflict when another reviewer holds a live lease or it is already
    decided (or already escalated, for a second escalate); ReviewForbidden when it is
    escalated and the caller may not decide escalated reviews. Writes a ``review.decided``
    audit event with before and after, and the outbox event, in the caller's transaction.
    """
    if decision not in Decision.ALL:
        raise ValueError(f"decision must be one of {', '.join(Decision.ALL)}, got {decision!r}")
    review = _locked_review(session, verdict_id)
    if review.state == ReviewState.DECIDED:
        raise ReviewConflict(f"the review of verdict {verdict_id} is already decided")
    if review.state == ReviewState.ESCALATED:
        if not may_decide_escalated:
            raise ReviewForbidden(f"the review of verdict {verdict_id} is escalated to admins")
        if decision == Decision.ESCALATE:
            raise ReviewConflict(f"the review of verdict {verdict_id} is already escalated")
    holder = _live_holder(review, actor)
    if holder is not None:
        raise ReviewConflict(f"the review of verdict {verdict_id} is claimed by {holder}")
    before = _snapshot(review)
    now = utcnow()
    final = decision != Decision.ESCALATE
    values: dict[str, Any] = {
        "state": ReviewState.DECIDED if final else ReviewState.ESCALATED,
        "decision": decision,
        "note": note,
        "claimed_by": None,
        "claim_expires_at": None,
        "decided_by": actor,
        "decided_at": now,
    }
    result = session.execute(
        update(Review)
        .where(Review.id == review.id, Review.state == review.state, _claimable(actor, now))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if int(getattr(result, "rowcount", 0)) != 1:
        raise ReviewConflict(f"the review of verdict {verdict_id} changed hands; reload it")
    session.refresh(review)
    after = _snapshot(review)
    append_event(
        session,
        actor=actor,
        action=AuditActions.REVIEW_DECIDED,
        subject_type="verdict",
        subject_id=verdict_id,
        before=before,
        after=after,
    )
    verdict = session.get_one(Verdict, verdict_id)
    add_event(
        session,
        targets=outbox_targets,
        topic=Topics.REVIEW_DECIDED,
        payload={
            "verdict_id": verdict_id,
            "image_sha256": verdict.image_sha256,
            "decision": decision,
            "state": review.state,
            "note": note,
            "decided_by": actor,
            "decided_at": _iso(review.decided_at),
            "model_name": verdict.model_name,
            "model_version": verdict.model_version,
            "policy_version": verdict.policy_version,
        },
    )
    return review
