"""The audit trail: append-only, hash-chained events, and the walk that verifies them.

Each event's ``hash`` is sha256(previous hash ‖ canonical JSON of its fields). The first
event chains from :data:`GENESIS`. ``prev_hash`` is unique, so two writers racing for the
same predecessor cannot fork the chain: one of them fails and its transaction rolls back.
On PostgreSQL appends also take a transaction-scoped advisory lock, so they queue instead
of failing. The database itself refuses UPDATE and DELETE on the table (migration 0002).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from db.models import AuditEvent, as_utc, utcnow

GENESIS = "0" * 64
_ADVISORY_LOCK = 0x6D6F_6473_6361_6E  # "modscan": one lock for the audit chain


class AuditActions:
    SCAN_CREATED = "scan.created"
    VERDICT_WRITTEN = "verdict.written"
    POLICY_CHANGED = "policy.changed"
    REVIEW_CLAIMED = "review.claimed"
    REVIEW_DECIDED = "review.decided"
    KEY_ISSUED = "key.issued"
    KEY_REVOKED = "key.revoked"


@dataclass(frozen=True)
class NewEvent:
    actor: str
    action: str
    subject_type: str
    subject_id: str
    before: Mapping[str, Any] | None = None
    after: Mapping[str, Any] | None = None


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 kept: the same value always gives the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _timestamp(moment: datetime) -> str:
    return as_utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_hash(
    prev_hash: str,
    *,
    occurred_at: datetime,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: str,
    before: str | None,
    after: str | None,
) -> str:
    row = canonical_json(
        {
            "occurred_at": _timestamp(occurred_at),
            "actor": actor,
            "action": action,
            "subject_type": subject_type,
            "subject_id": subject_id,
            "before": before,
            "after": after,
        }
    )
    return hashlib.sha256((prev_hash + row).encode("utf-8")).hexdigest()


def _row_hash(event: AuditEvent, prev_hash: str) -> str:
    return event_hash(
        prev_hash,
        occurred_at=event.occurred_at,
        actor=event.actor,
        action=event.action,
        subject_type=event.subject_type,
        subject_id=event.subject_id,
        before=event.before,
        after=event.after,
    )


def _lock_chain(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK})


def last_hash(session: Session) -> str:
    found = session.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1))
    return found or GENESIS


def append_events(session: Session, events: Sequence[NewEvent]) -> list[AuditEvent]:
    """Append events to the chain in the caller's transaction (committed with it)."""
    if not events:
        return []
    _lock_chain(session)
    prev = last_hash(session)
    now = utcnow()
    rows: list[AuditEvent] = []
    for new in events:
        before = canonical_json(new.before) if new.before is not None else None
        after = canonical_json(new.after) if new.after is not None else None
        row = AuditEvent(
            occurred_at=now,
            actor=new.actor,
            action=new.action,
            subject_type=new.subject_type,
            subject_id=str(new.subject_id),
            before=before,
            after=after,
            prev_hash=prev,
        )
        row.hash = _row_hash(row, prev)
        prev = row.hash
        rows.append(row)
    session.add_all(rows)
    session.flush()
    return rows


def append_event(
    session: Session,
    *,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: str | int,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> AuditEvent:
    return append_events(
        session,
        [NewEvent(actor, action, subject_type, str(subject_id), before, after)],
    )[0]


@dataclass(frozen=True)
class ChainReport:
    checked: int
    broken_at: int | None  # id of the first event whose link does not hold
    reason: str | None

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def verify_chain(session: Session, *, batch: int = 5000) -> ChainReport:
    """Walk the chain in id order and name the first event whose link does not hold."""
    prev = GENESIS
    checked = 0
    after_id = 0
    while True:
        rows = list(
            session.scalars(
                select(AuditEvent)
                .where(AuditEvent.id > after_id)
                .order_by(AuditEvent.id)
                .limit(batch)
            )
        )
        if not rows:
            return ChainReport(checked=checked, broken_at=None, reason=None)
        for row in rows:
            if row.prev_hash != prev:
                return ChainReport(
                    checked, row.id, f"prev_hash does not match event before it ({prev[:12]}…)"
                )
            if _row_hash(row, prev) != row.hash:
                return ChainReport(checked, row.id, "hash does not match the row's contents")
            prev = row.hash
            checked += 1
        after_id = rows[-1].id
        session.expunge_all()


@dataclass(frozen=True)
class AuditFilter:
    subject_type: str | None = None
    subject_id: str | None = None
    actor: str | None = None
    action: str | None = None
    since: datetime | None = None  # inclusive; no offset means UTC
    until: datetime | None = None  # exclusive

    def __post_init__(self) -> None:
        object.__setattr__(self, "since", as_utc(self.since))
        object.__setattr__(self, "until", as_utc(self.until))


def list_events(
    session: Session, where: AuditFilter, *, limit: int, after_id: int | None = None
) -> tuple[list[AuditEvent], bool]:
    """Events by ascending id after ``after_id``; and whether more follow."""
    query = select(AuditEvent)
    if after_id is not None:
        query = query.where(AuditEvent.id > after_id)
    if where.subject_type is not None:
        query = query.where(AuditEvent.subject_type == where.subject_type)
    if where.subject_id is not None:
        query = query.where(AuditEvent.subject_id == where.subject_id)
    if where.actor is not None:
        query = query.where(AuditEvent.actor == where.actor)
    if where.action is not None:
        query = query.where(AuditEvent.action == where.action)
    if where.since is not None:
        query = query.where(AuditEvent.occurred_at >= where.since)
    if where.until is not None:
        query = query.where(AuditEvent.occurred_at < where.until)
    rows = list(session.scalars(query.order_by(AuditEvent.id).limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def iter_events(session: Session, where: AuditFilter, *, batch: int = 1000) -> Iterator[AuditEvent]:
    after: int | None = None
    while True:
        rows, more = list_events(session, where, limit=batch, after_id=after)
        yield from rows
        if not more:
            return
        after = rows[-1].id


def event_as_dict(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "occurred_at": _timestamp(event.occurred_at),
        "actor": event.actor,
        "action": event.action,
        "subject_type": event.subject_type,
        "subject_id": event.subject_id,
        "before": json.loads(event.before) if event.before else None,
        "after": json.loads(event.after) if event.after else None,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }
