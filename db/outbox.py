"""The transactional outbox: events written beside the change that caused them.

:func:`add_event` writes one row per outbound target inside the caller's transaction, so an
event exists exactly when the verdict or review decision it describes was committed, and a
rolled-back transaction sends nothing. The relay (``workers.outbound``) then delivers each
row at least once:

1. :func:`claim_due` leases due rows: it pushes their ``next_attempt_at`` a lease ahead and
   counts the attempt; the caller commits at once, so no transaction stays open during the
   network call. On PostgreSQL rows are picked with ``FOR UPDATE SKIP LOCKED``, so several
   relays share the work; on SQLite (one writer) every claim is guarded by the attempt count.
2. The relay delivers, then records the outcome with :func:`mark_delivered` or
   :func:`mark_failed` (exponential backoff with jitter, capped).

A relay killed mid-delivery leaves its rows undelivered with the lease as their next attempt:
another relay takes them again once the lease runs out. Consumers may therefore see an event
twice and deduplicate on ``event_id``. After ``max_attempts`` a row is no longer claimed and
counts as failed; it stays in the table, with its ``last_error``, for inspection.

Nothing here commits: every function works inside the caller's session.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.orm import Session

from db.models import OutboxMessage, as_utc, utcnow
from db.upsert import insert_ignore


class Targets:
    WEBHOOK = "webhook"
    SQS = "sqs"
    REDIS = "redis"
    ALL = (WEBHOOK, SQS, REDIS)


class Topics:
    VERDICT_FLAGGED = "verdict.flagged"
    VERDICT_NEEDS_REVIEW = "verdict.needs_review"
    REVIEW_DECIDED = "review.decided"


@dataclass(frozen=True)
class ClaimedMessage:
    """One leased row: what the relay needs to deliver it and to record the outcome."""

    id: int
    event_id: str
    target: str
    topic: str
    body: str  # the event document, sent verbatim to every target
    attempt: int  # 1 on the first delivery; also the guard against a stale outcome


@dataclass(frozen=True)
class TargetStatus:
    target: str
    pending: int  # waiting for a first delivery, or in flight
    failing: int  # the last attempt failed; another comes after the backoff
    failed: int  # gave up after max_attempts; kept for inspection
    delivered: int


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_timestamp(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"an outbox payload cannot hold {type(value).__name__}")


def iso_timestamp(moment: datetime) -> str:
    return as_utc(moment).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_document(
    event_id: str, topic: str, occurred_at: datetime, data: Mapping[str, Any]
) -> str:
    """The JSON every target receives: ``event_id``, ``topic``, ``occurred_at`` and ``data``."""
    document = {
        "event_id": event_id,
        "topic": topic,
        "occurred_at": iso_timestamp(occurred_at),
        "data": dict(data),
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), default=_json_default)


def add_event(
    session: Session,
    *,
    targets: Sequence[str],
    topic: str,
    payload: Mapping[str, Any],
    event_id: str | None = None,
) -> str | None:
    """Write one outbox row per target in the caller's transaction; return the event id.

    Pass ``targets=settings.outbox_targets``. With no targets nothing is written and the
    result is None. A caller that may run twice for one change (a redelivered task) can pass
    a stable ``event_id`` (a uuid5 of the change, say): the second write adds nothing.
    """
    if not targets:
        return None
    unknown = sorted(set(targets) - set(Targets.ALL))
    if unknown:
        raise ValueError(f"unknown outbox targets {unknown}; known: {list(Targets.ALL)}")
    event_id = event_id or str(uuid.uuid4())
    now = utcnow()
    body = event_document(event_id, topic, now, payload)
    rows = [
        {
            "event_id": event_id,
            "target": target,
            "topic": topic,
            "payload": body,
            "created_at": now,
            "attempts": 0,
            "next_attempt_at": now,
        }
        for target in dict.fromkeys(targets)
    ]
    session.execute(insert_ignore(session, OutboxMessage.__table__, ["event_id", "target"]), rows)
    return event_id


def claim_due(
    session: Session,
    *,
    targets: Sequence[str],
    limit: int,
    lease_s: float,
    max_attempts: int,
) -> list[ClaimedMessage]:
    """Lease up to ``limit`` due rows for ``targets``, oldest due first. Commit right after.

    Each claimed row's ``attempts`` goes up by one and its ``next_attempt_at`` moves a lease
    ahead, so a relay that dies before recording the outcome gives the row back by itself.
    """
    if not targets or limit <= 0:
        return []
    now = utcnow()
    stmt = (
        select(
            OutboxMessage.id,
            OutboxMessage.event_id,
            OutboxMessage.target,
            OutboxMessage.topic,
            OutboxMessage.payload,
            OutboxMessage.attempts,
        )
        .where(
            OutboxMessage.delivered_at.is_(None),
            OutboxMessage.next_attempt_at <= now,
            OutboxMessage.attempts < max_attempts,
            OutboxMessage.target.in_(list(targets)),
        )
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    lease_until = now + timedelta(seconds=lease_s)
    claimed = []
    for row in session.execute(stmt).all():
        # Guarded by the attempt count: on SQLite another relay may have leased the row
        # since the SELECT (on PostgreSQL the row lock already rules that out).
        taken = session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row.id, OutboxMessage.attempts == row.attempts)
            .values(attempts=row.attempts + 1, next_attempt_at=lease_until)
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount == 1:  # type: ignore[attr-defined]
            claimed.append(
                ClaimedMessage(
                    id=row.id,
                    event_id=row.event_id,
                    target=row.target,
                    topic=row.topic,
                    body=row.payload,
                    attempt=row.attempts + 1,
                )
            )
    return claimed


def mark_delivered(session: Session, message: ClaimedMessage) -> None:
    """Record a delivery. It stands even if the lease ran out and another relay took over."""
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message.id, OutboxMessage.delivered_at.is_(None))
        .values(delivered_at=utcnow(), last_error=None)
        .execution_options(synchronize_session=False)
    )


def retry_delay(attempt: int, *, base_s: float, max_s: float) -> float:
    """Seconds before the next try after ``attempt`` failed: doubling from ``base_s``, capped
    at ``max_s``, then jittered into its upper half so failing relays do not move in step."""
    delay = min(max_s, base_s * 2.0 ** min(max(attempt - 1, 0), 32))
    return delay / 2 + random.uniform(0, delay / 2)


def mark_failed(
    session: Session, message: ClaimedMessage, error: str, *, base_s: float, max_s: float
) -> None:
    """Record a failed try and when to try again; ignored if another relay has the row now."""
    delay = retry_delay(message.attempt, base_s=base_s, max_s=max_s)
    session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.id == message.id,
            OutboxMessage.attempts == message.attempt,
            OutboxMessage.delivered_at.is_(None),
        )
        .values(next_attempt_at=utcnow() + timedelta(seconds=delay), last_error=error[:2000])
        .execution_options(synchronize_session=False)
    )


def release(session: Session, messages: Sequence[ClaimedMessage]) -> None:
    """Hand back leased rows that were not tried after all; the attempt is not counted."""
    for message in messages:
        session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == message.id,
                OutboxMessage.attempts == message.attempt,
                OutboxMessage.delivered_at.is_(None),
            )
            .values(attempts=message.attempt - 1, next_attempt_at=utcnow())
            .execution_options(synchronize_session=False)
        )


def outbox_status(session: Session, *, max_attempts: int) -> list[TargetStatus]:
    """Counts per target: pending, failing (will retry), failed (gave up) and delivered."""
    now = utcnow()
    undelivered = OutboxMessage.delivered_at.is_(None)
    gave_up = undelivered & (OutboxMessage.attempts >= max_attempts)
    gave_up = gave_up & (OutboxMessage.next_attempt_at <= now)  # not still on its last lease
    failing = undelivered & ~gave_up & OutboxMessage.last_error.is_not(None)

    def count(condition: Any) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    rows = session.execute(
        select(
            OutboxMessage.target,
            count(undelivered & ~gave_up & OutboxMessage.last_error.is_(None)),
            count(failing),
            count(gave_up),
            count(OutboxMessage.delivered_at.is_not(None)),
        )
        .group_by(OutboxMessage.target)
        .order_by(OutboxMessage.target)
    ).all()
    return [
        TargetStatus(
            target=row[0],
            pending=int(row[1]),
            failing=int(row[2]),
            failed=int(row[3]),
            delivered=int(row[4]),
        )
        for row in rows
    ]


def retry_failed(session: Session, *, max_attempts: int, target: str | None = None) -> int:
    """Give rows the relay gave up on a fresh set of attempts (after a target is fixed).
    Returns how many rows will be tried again."""
    query = (
        update(OutboxMessage)
        .where(OutboxMessage.delivered_at.is_(None), OutboxMessage.attempts >= max_attempts)
        .values(attempts=0, next_attempt_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if target is not None:
        query = query.where(OutboxMessage.target == target)
    return int(session.execute(query).rowcount or 0)  # type: ignore[attr-defined]


def prune_delivered(session: Session, *, older_than: timedelta) -> int:
    """Delete rows delivered longer ago than ``older_than``; the audit trail keeps the
    history, the outbox only needs what is still to send. Returns how many went."""
    cutoff = utcnow() - older_than
    result = session.execute(
        delete(OutboxMessage)
        .where(OutboxMessage.delivered_at.is_not(None), OutboxMessage.delivered_at < cutoff)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
