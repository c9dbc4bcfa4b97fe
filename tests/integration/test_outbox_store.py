"""The outbox table's functions on PostgreSQL and SQLite: writing events in the caller's
transaction, leasing, backoff, giving up, and the status counts."""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from db.models import OutboxMessage, utcnow
from db.outbox import (
    add_event,
    claim_due,
    mark_delivered,
    mark_failed,
    outbox_status,
    release,
)
from db.session import get_sessionmaker, session_scope

pytestmark = pytest.mark.integration

ALL = ["webhook", "sqs", "redis"]


def rows(url: str) -> list[OutboxMessage]:
    with session_scope(url) as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def claim(url: str, *, targets: list[str] | None = None, limit: int = 100, max_attempts: int = 5):
    with session_scope(url) as session:
        return claim_due(
            session, targets=targets or ALL, limit=limit, lease_s=60, max_attempts=max_attempts
        )


def make_due(url: str) -> None:
    """Skip the wait: every lease and backoff is over."""
    with session_scope(url) as session:
        session.execute(update(OutboxMessage).values(next_attempt_at=utcnow() - timedelta(1)))


def test_add_event_writes_one_document_per_target(db_url: str) -> None:
    with session_scope(db_url) as session:
        event_id = add_event(
            session,
            targets=ALL,
            topic="verdict.flagged",
            payload={"verdict_id": 7, "ai_score": 0.98, "seen_at": utcnow()},
        )
        assert add_event(session, targets=[], topic="verdict.flagged", payload={}) is None
    written = rows(db_url)
    assert event_id and uuid.UUID(event_id)
    assert sorted(row.target for row in written) == sorted(ALL)
    assert {row.event_id for row in written} == {event_id}
    assert len({row.payload for row in written}) == 1  # every target sends the same bytes
    document = json.loads(written[0].payload)
    assert set(document) == {"event_id", "topic", "occurred_at", "data"}
    assert document["event_id"] == event_id and document["topic"] == "verdict.flagged"
    assert document["data"]["verdict_id"] == 7 and document["data"]["ai_score"] == 0.98
    assert document["occurred_at"].endswith("Z")
    assert all(row.attempts == 0 and row.delivered_at is None for row in written)


def test_add_event_is_idempotent_with_a_given_event_id(db_url: str) -> None:
    event_id = str(uuid.uuid4())
    for _ in range(2):
        with session_scope(db_url) as session:
            got = add_event(
                session, targets=["sqs"], topic="review.decided", payload={}, event_id=event_id
            )
            assert got == event_id
    assert len(rows(db_url)) == 1
    with session_scope(db_url) as session, pytest.raises(ValueError, match="unknown outbox"):
        add_event(session, targets=["email"], topic="review.decided", payload={})


def test_rolled_back_event_is_not_written(db_url: str) -> None:
    with pytest.raises(RuntimeError), session_scope(db_url) as session:
        add_event(session, targets=ALL, topic="verdict.flagged", payload={"verdict_id": 1})
        raise RuntimeError("the verdict write failed")
    assert rows(db_url) == []
    assert claim(db_url) == []


def test_lease_backoff_and_giving_up(db_url: str) -> None:
    with session_scope(db_url) as session:
        add_event(session, targets=["webhook"], topic="verdict.flagged", payload={})
    (first,) = claim(db_url, max_attempts=2)
    assert first.attempt == 1
    assert claim(db_url, max_attempts=2) == []  # leased

    before = utcnow()
    with session_scope(db_url) as session:
        mark_failed(session, first, "webhook answered HTTP 500", base_s=30, max_s=600)
    (row,) = rows(db_url)
    assert row.attempts == 1 and row.last_error == "webhook answered HTTP 500"
    wait = row.next_attempt_at.replace(tzinfo=None) - before.replace(tzinfo=None)
    assert timedelta(seconds=14) < wait <= timedelta(seconds=31)  # 30 s, jittered
    assert claim(db_url, max_attempts=2) == []  # backing off
    with session_scope(db_url) as session:
        (status,) = outbox_status(session, max_attempts=2)
    assert (status.pending, status.failing, status.failed, status.delivered) == (0, 1, 0, 0)

    make_due(db_url)
    (second,) = claim(db_url, max_attempts=2)
    assert second.attempt == 2
    with session_scope(db_url) as session:
        mark_failed(session, first, "a stale outcome", base_s=30, max_s=600)  # ignored
        mark_failed(session, second, "webhook answered HTTP 503", base_s=30, max_s=600)
    make_due(db_url)
    assert claim(db_url, max_attempts=2) == []  # given up
    (row,) = rows(db_url)
    assert row.attempts == 2 and row.last_error == "webhook answered HTTP 503"
    with session_scope(db_url) as session:
        (status,) = outbox_status(session, max_attempts=2)
    assert (status.pending, status.failing, status.failed, status.delivered) == (0, 0, 1, 0)


def test_delivery_release_and_status(db_url: str) -> None:
    with session_scope(db_url) as session:
        for number in range(3):
            add_event(session, targets=ALL, topic="verdict.needs_review", payload={"n": number})
    claimed = claim(db_url, targets=["sqs", "redis"], limit=4)
    assert len(claimed) == 4 and {message.target for message in claimed} == {"sqs", "redis"}
    with session_scope(db_url) as session:
        for message in claimed[:3]:
            mark_delivered(session, message)
        release(session, claimed[3:])
    with session_scope(db_url) as session:
        status = {row.target: row for row in outbox_status(session, max_attempts=5)}
    assert status["webhook"].pending == 3 and status["webhook"].delivered == 0
    assert status["sqs"].delivered + status["redis"].delivered == 3
    assert status["sqs"].pending + status["redis"].pending == 3  # one released, two untouched
    released = [row for row in rows(db_url) if row.id == claimed[3].id]
    assert released[0].attempts == 0 and released[0].delivered_at is None
    rest = claim(db_url, targets=["sqs", "redis"])
    assert claimed[3].id in {message.id for message in rest} and len(rest) == 3


def test_relays_share_rows_without_overlap_on_postgresql(pg_url: str) -> None:
    with session_scope(pg_url) as session:
        for number in range(6):
            add_event(session, targets=["redis"], topic="verdict.flagged", payload={"n": number})
    holding = get_sessionmaker(pg_url)()
    try:
        # The first relay's claim is not committed yet: its rows stay locked.
        first = claim_due(holding, targets=["redis"], limit=4, lease_s=60, max_attempts=5)
        started = time.monotonic()
        second = claim(pg_url, targets=["redis"], limit=10)
        assert time.monotonic() - started < 5  # skipped the locked rows, did not wait
        holding.commit()
    finally:
        holding.close()
    assert len(first) == 4 and len(second) == 2
    assert not {message.id for message in first} & {message.id for message in second}


def test_given_up_events_can_be_retried_and_old_deliveries_pruned(db_url: str) -> None:
    from db.outbox import prune_delivered, retry_failed

    with session_scope(db_url) as session:
        for n in range(3):
            add_event(
                session, targets=["webhook", "redis"], topic="verdict.flagged", payload={"n": n}
            )
    all_rows = rows(db_url)
    webhook = [r.id for r in all_rows if r.target == "webhook"]
    redis_ = [r.id for r in all_rows if r.target == "redis"]
    with session_scope(db_url) as session:
        # Two webhook rows gave up; one redis row was delivered long ago, one just now.
        session.execute(
            update(OutboxMessage).where(OutboxMessage.id.in_(webhook[:2])).values(attempts=5)
        )
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == redis_[0])
            .values(delivered_at=utcnow() - timedelta(days=40))
        )
        session.execute(
            update(OutboxMessage).where(OutboxMessage.id == redis_[1]).values(delivered_at=utcnow())
        )
    with session_scope(db_url) as session:
        assert retry_failed(session, max_attempts=5, target="redis") == 0
        assert retry_failed(session, max_attempts=5) == 2
        assert prune_delivered(session, older_than=timedelta(days=30)) == 1
    left = {r.id: r for r in rows(db_url)}
    assert redis_[0] not in left and redis_[1] in left
    assert [left[i].attempts for i in webhook[:2]] == [0, 0]
    assert {m.id for m in claim(db_url, max_attempts=5)} >= set(webhook)
