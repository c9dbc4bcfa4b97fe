"""Scan items: registering listed sources, claiming work, counting deliveries, finding work
that nothing has touched for a while. What a batch's outcomes write is in ``db.verdicts``.

Every write here is idempotent, so a redelivered listing page or classify task changes
nothing that is already final.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import Select, case, func, literal, or_, select, update
from sqlalchemy.orm import Session

from db.models import ErrorReason, ItemStatus, ScanItem, Source, utcnow
from db.scans import complete_finished_scans
from db.upsert import insert_ignore


@dataclass(frozen=True)
class SourceRecord:
    """One listed object or file, before it has an id."""

    scheme: str  # s3 | file
    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None
    size: int | None = None
    version: str = ""  # identity version: version id, else ETag, else mtime-size
    skip_reason: str | None = None  # set when the extension rules the object out
    error_reason: str | None = None  # set when the listed size already rules it out

    @property
    def identity(self) -> tuple[str, str, str, str]:
        return (self.scheme, self.bucket, self.key, self.version)


@dataclass(frozen=True)
class WorkItem:
    """A pending scan item with what the worker needs to fetch it."""

    item_id: int
    scan_id: int
    scheme: str
    bucket: str
    key: str
    version_id: str | None
    size: int | None
    attempts: int
    claim_token: str | None = None  # the delivery that holds the item, if any

    @property
    def uri(self) -> str:
        return f"file://{self.key}" if self.scheme == "file" else f"s3://{self.bucket}/{self.key}"

    def to_payload(self) -> dict[str, object]:
        """The JSON reference a classify task carries: never bytes."""
        return {
            "item_id": self.item_id,
            "uri": self.uri,
            "version_id": self.version_id,
        }


def register_sources(
    session: Session, scan_id: int, records: Sequence[SourceRecord], *, new_only: bool = False
) -> list[WorkItem]:
    """Insert sources and this scan's items for them; return the items still pending.

    With new_only, items that this scan already had (a duplicate event) are not returned,
    so a duplicate delivery is a no-op rather than a second dispatch.
    """
    if not records:
        return []
    unique = {record.identity: record for record in records}
    now = utcnow()
    connection = session.connection()  # Core executemany: the ORM bulk path costs 2x here
    connection.execute(
        insert_ignore(session, Source.__table__, ["scheme", "bucket", "key", "version"]),
        [
            {
                "scheme": r.scheme,
                "bucket": r.bucket,
                "key": r.key,
                "version": r.version,
                "version_id": r.version_id,
                "etag": r.etag,
                "size": r.size,
                "created_at": now,
            }
            for r in unique.values()
        ],
    )
    ids = source_ids(session, list(unique))
    known: set[int] = set()
    if new_only:
        known = set(
            session.scalars(
                select(ScanItem.source_id).where(
                    ScanItem.scan_id == scan_id, ScanItem.source_id.in_(list(ids.values()))
                )
            )
        )
    connection.execute(
        insert_ignore(session, ScanItem.__table__, ["scan_id", "source_id"]),
        [
            {
                "scan_id": scan_id,
                "source_id": ids[identity],
                "status": _initial_status(r),
                "error_reason": r.error_reason,
                "error_detail": r.skip_reason
                or (f"listed size {r.size} bytes is over the limit" if r.error_reason else None),
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
            }
            for identity, r in unique.items()
        ],
    )
    fresh = [source_id for source_id in ids.values() if source_id not in known]
    return pending_items(session, scan_id=scan_id, source_ids=fresh) if fresh else []


def _initial_status(record: SourceRecord) -> str:
    if record.skip_reason:
        return ItemStatus.SKIPPED
    if record.error_reason:
        return ItemStatus.ERROR
    return ItemStatus.PENDING


def source_ids(
    session: Session, identities: Sequence[tuple[str, str, str, str]]
) -> dict[tuple[str, str, str, str], int]:
    """Ids of known sources, looked up by (scheme, bucket) and key: an index range scan."""
    wanted = set(identities)
    by_bucket: dict[tuple[str, str], list[str]] = {}
    for scheme, bucket, key, _version in identities:
        by_bucket.setdefault((scheme, bucket), []).append(key)
    found: dict[tuple[str, str, str, str], int] = {}
    for (scheme, bucket), keys in by_bucket.items():
        for start in range(0, len(keys), 1000):
            rows = session.execute(
                select(Source.id, Source.key, Source.version).where(
                    Source.scheme == scheme,
                    Source.bucket == bucket,
                    Source.key.in_(sorted(set(keys[start : start + 1000]))),
                )
            )
            for source_id, key, version in rows:
                if (scheme, bucket, key, version) in wanted:
                    found[(scheme, bucket, key, version)] = source_id
    return found


def _work_items_query() -> Select[int, int, str, str, str, str | None, int | None, int, str | None]:
    return select(
        ScanItem.id,
        ScanItem.scan_id,
        Source.scheme,
        Source.bucket,
        Source.key,
        Source.version_id,
        Source.size,
        ScanItem.attempts,
        ScanItem.claim_token,
    ).join(Source, ScanItem.source_id == Source.id)


def pending_items(
    session: Session,
    *,
    scan_id: int | None = None,
    source_ids: Sequence[int] | None = None,
    item_ids: Sequence[int] | None = None,
) -> list[WorkItem]:
    query = _work_items_query().where(ScanItem.status == ItemStatus.PENDING)
    if scan_id is not None:
        query = query.where(ScanItem.scan_id == scan_id)
    if source_ids is not None:
        query = query.where(ScanItem.source_id.in_(list(source_ids)))
    if item_ids is not None:
        query = query.where(ScanItem.id.in_(list(item_ids)))
    return [WorkItem(*row) for row in session.execute(query.order_by(ScanItem.id))]


def claim_items(
    session: Session,
    items: Sequence[WorkItem],
    *,
    token: str,
    lease_s: float,
    max_attempts: int,
    previous: str | None = None,
) -> list[WorkItem]:
    """Claim items for one delivery (``token``, fresh for each run), counting it once, and
    dead-letter those past max_attempts. Returns the items this delivery may process.

    One ``UPDATE ... RETURNING`` increments and reads the counter, so two deliveries never
    read the same count. An item that another delivery holds, with its lease still running,
    is left alone: a redelivered duplicate neither counts nor scores it again. A retry after
    a transient error names the run it follows (``previous``) and takes that run's claims
    over without counting, as long as their lease runs; once it has run out (longer than a
    transient retry waits, shorter than the broker's visibility timeout), any delivery may
    claim the item, and that counts: a worker killed by the item is what attempts measure.
    Commit before processing, so a worker killed mid-batch leaves the count behind.
    """
    if not items:
        return []
    now = utcnow()
    held = ScanItem.claimed_until.is_not(None) & (ScanItem.claimed_until >= now)
    claimable = ~held
    attempts = ScanItem.attempts + 1
    if previous is not None:
        taken_over = (ScanItem.claim_token == previous) & held
        claimable = or_(claimable, taken_over)
        attempts = case((taken_over, ScanItem.attempts), else_=ScanItem.attempts + 1)
    rows = session.execute(
        update(ScanItem)
        .where(
            ScanItem.id.in_([item.item_id for item in items]),
            ScanItem.status == ItemStatus.PENDING,
            claimable,
        )
        .values(
            attempts=attempts,
            claim_token=token,
            claimed_until=now + timedelta(seconds=lease_s),
            updated_at=now,
        )
        .returning(ScanItem.id, ScanItem.attempts)
        .execution_options(synchronize_session=False)
    ).all()
    counted = {item_id: attempts for item_id, attempts in rows}
    dead = [item_id for item_id, attempts in counted.items() if attempts > max_attempts]
    if dead:
        session.execute(
            update(ScanItem)
            .where(ScanItem.id.in_(dead), ScanItem.status == ItemStatus.PENDING)
            .values(
                attempts=max_attempts,  # the deliveries that ran; this one only gave up
                status=ItemStatus.DEAD,
                error_reason=ErrorReason.MAX_ATTEMPTS,
                error_detail=func.coalesce(
                    literal(f"gave up after {max_attempts} deliveries; last error: ")
                    + ScanItem.error_detail,
                    literal(f"gave up after {max_attempts} deliveries that did not finish"),
                ),
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        dead_set = set(dead)
        complete_finished_scans(
            session, sorted({item.scan_id for item in items if item.item_id in dead_set})
        )
    return [
        replace(item, attempts=counted[item.item_id], claim_token=token)
        for item in items
        if item.item_id in counted and counted[item.item_id] <= max_attempts
    ]


def release_claims(session: Session, item_ids: Sequence[int], *, token: str) -> None:
    """End a delivery's claims early (it failed unexpectedly and was retried): the next
    delivery may claim the items at once, and counts an attempt for each."""
    session.execute(
        update(ScanItem)
        .where(
            ScanItem.id.in_(list(item_ids)),
            ScanItem.claim_token == token,
            ScanItem.status == ItemStatus.PENDING,
        )
        .values(claimed_until=None)
        .execution_options(synchronize_session=False)
    )


def note_retry_reasons(session: Session, reasons: dict[int, str]) -> None:
    """Keep why a still-pending item failed transiently (shown if it is dead-lettered)."""
    for item_id, reason in reasons.items():
        session.execute(
            update(ScanItem)
            .where(ScanItem.id == item_id, ScanItem.status == ItemStatus.PENDING)
            .values(error_detail=reason[:1000])
            .execution_options(synchronize_session=False)
        )


def stale_pending_items(
    session: Session, *, untouched_since: datetime, limit: int = 10_000
) -> list[WorkItem]:
    """Pending items nothing has written since ``untouched_since`` and no live delivery
    holds: work a broker may have lost. Oldest first, at most ``limit`` of them; the
    partial index on pending items' ``updated_at`` makes this a range scan."""
    now = utcnow()
    query = (
        _work_items_query()
        .where(
            ScanItem.status == ItemStatus.PENDING,
            ScanItem.updated_at < untouched_since,
            or_(ScanItem.claimed_until.is_(None), ScanItem.claimed_until < now),
        )
        .order_by(ScanItem.updated_at)
        .limit(limit)
    )
    return [WorkItem(*row) for row in session.execute(query)]


def touch_items(session: Session, item_ids: Sequence[int]) -> None:
    """Mark items as just handed out again, so the next sweep leaves them alone a while."""
    now = utcnow()
    for start in range(0, len(item_ids), 1000):
        session.execute(
            update(ScanItem)
            .where(ScanItem.id.in_(list(item_ids[start : start + 1000])))
            .values(updated_at=now)
            .execution_options(synchronize_session=False)
        )
