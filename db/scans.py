"""Scan jobs: creation, listing progress, counts and completion."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session

from db.audit import AuditActions, append_event
from db.models import ItemStatus, Scan, ScanItem, ScanStatus, Source, Verdict, utcnow


def create_scan(
    session: Session, *, source_uri: str, kind: str, created_by: str | None = None
) -> Scan:
    scan = Scan(source_uri=source_uri, kind=kind, status=ScanStatus.LISTING, created_by=created_by)
    session.add(scan)
    session.flush()
    _audit_scan(session, scan)
    return scan


def _audit_scan(session: Session, scan: Scan) -> None:
    append_event(
        session,
        actor=scan.created_by or "system",
        action=AuditActions.SCAN_CREATED,
        subject_type="scan",
        subject_id=scan.id,
        after={"source_uri": scan.source_uri, "kind": scan.kind},
    )


def get_or_create_stream_scan(session: Session, source_uri: str) -> Scan:
    """Queue consumers file their items under one long-lived scan per queue."""
    scan = session.scalars(
        select(Scan)
        .where(Scan.kind == "stream", Scan.source_uri == source_uri)
        .order_by(Scan.id)  # should two ever exist (a first-event race), always the same one
        .limit(1)
    ).first()
    if scan is None:
        scan = Scan(source_uri=source_uri, kind="stream", status=ScanStatus.RUNNING)
        session.add(scan)
        session.flush()
        _audit_scan(session, scan)
    return scan


def record_listing_page(session: Session, scan_id: int, *, cursor: str) -> None:
    """Count what is registered (a replayed page counts once) and keep the resume cursor."""
    listed = select(func.count()).where(ScanItem.scan_id == scan_id).scalar_subquery()
    session.execute(
        update(Scan)
        .where(Scan.id == scan_id)
        .values(
            listed=listed,
            list_cursor=cursor,
            status=ScanStatus.RUNNING,
            updated_at=utcnow(),
        )
    )


def finish_listing(session: Session, scan_id: int) -> None:
    session.execute(
        update(Scan)
        .where(Scan.id == scan_id)
        .values(listing_done=True, status=ScanStatus.RUNNING, updated_at=utcnow())
    )
    complete_finished_scans(session, [scan_id])


def stale_listings(session: Session, *, untouched_since: datetime) -> list[int]:
    """Scans still listing that nothing has written since then: a lost listing task."""
    return list(
        session.scalars(
            select(Scan.id).where(
                Scan.listing_done.is_(False),
                Scan.kind != "stream",
                Scan.status.in_([ScanStatus.LISTING, ScanStatus.RUNNING]),
                Scan.updated_at < untouched_since,
            )
        )
    )


def touch_scans(session: Session, scan_ids: list[int]) -> None:
    if scan_ids:
        session.execute(update(Scan).where(Scan.id.in_(scan_ids)).values(updated_at=utcnow()))


def fail_scan(session: Session, scan_id: int, error: str) -> None:
    session.execute(
        update(Scan)
        .where(Scan.id == scan_id)
        .values(status=ScanStatus.FAILED, error=error, finished_at=utcnow(), updated_at=utcnow())
    )


def complete_finished_scans(session: Session, scan_ids: list[int]) -> None:
    """Mark scans completed once listing is done and no item is pending."""
    if not scan_ids:
        return
    pending = exists().where(ScanItem.scan_id == Scan.id, ScanItem.status == ItemStatus.PENDING)
    now = utcnow()
    session.execute(
        update(Scan)
        .where(
            Scan.id.in_(sorted(set(scan_ids))),
            Scan.listing_done.is_(True),
            Scan.status == ScanStatus.RUNNING,
            ~pending,
        )
        .values(status=ScanStatus.COMPLETED, finished_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )


@dataclass
class ScanCounts:
    by_status: dict[str, int] = field(default_factory=dict)
    errors_by_reason: dict[str, int] = field(default_factory=dict)
    by_label: dict[str, int] = field(default_factory=dict)
    by_action: dict[str, int] = field(default_factory=dict)  # the policy's reading

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    @property
    def pending(self) -> int:
        return self.by_status.get(ItemStatus.PENDING, 0)

    @property
    def finished(self) -> int:
        return self.total - self.pending


def scan_counts(session: Session, scan_id: int) -> ScanCounts:
    counts = ScanCounts()
    rows = session.execute(
        select(ScanItem.status, func.count())
        .where(ScanItem.scan_id == scan_id)
        .group_by(ScanItem.status)
    )
    counts.by_status = {status: n for status, n in rows}
    rows = session.execute(
        select(ScanItem.error_reason, func.count())
        .where(ScanItem.scan_id == scan_id, ScanItem.error_reason.is_not(None))
        .group_by(ScanItem.error_reason)
    )
    counts.errors_by_reason = {str(reason): n for reason, n in rows}
    rows = session.execute(
        select(Verdict.label, func.count())
        .join(ScanItem, ScanItem.verdict_id == Verdict.id)
        .where(ScanItem.scan_id == scan_id)
        .group_by(Verdict.label)
    )
    counts.by_label = {label: n for label, n in rows}
    rows = session.execute(
        select(Verdict.action, func.count())
        .join(ScanItem, ScanItem.verdict_id == Verdict.id)
        .where(ScanItem.scan_id == scan_id, Verdict.action.is_not(None))
        .group_by(Verdict.action)
    )
    counts.by_action = {str(action): n for action, n in rows}
    return counts


def scan_model_versions(session: Session, scan_id: int) -> set[str]:
    """The model versions behind this scan's verdicts."""
    rows = session.scalars(
        select(Verdict.model_version)
        .join(ScanItem, ScanItem.verdict_id == Verdict.id)
        .where(ScanItem.scan_id == scan_id)
        .distinct()
    )
    return set(rows)


def top_ai_items(session: Session, scan_id: int, limit: int = 10) -> list[tuple[str, float]]:
    """The scan's sources most likely to be AI-generated, as (uri, ai_score)."""
    rows = session.execute(
        select(Source, Verdict.ai_score)
        .join(ScanItem, ScanItem.source_id == Source.id)
        .join(Verdict, ScanItem.verdict_id == Verdict.id)
        .where(ScanItem.scan_id == scan_id)
        .order_by(Verdict.ai_score.desc(), Source.id)
        .limit(limit)
    )
    return [(source.uri, float(score)) for source, score in rows]


def verdicts_matching(
    session: Session, scan_id: int, key_contains: str
) -> list[tuple[str, str, float]]:
    """(uri, label, ai_score) for the scan's sources whose key contains the given text."""
    rows = session.execute(
        select(Source, Verdict.label, Verdict.ai_score)
        .join(ScanItem, ScanItem.source_id == Source.id)
        .join(Verdict, ScanItem.verdict_id == Verdict.id)
        .where(ScanItem.scan_id == scan_id, Source.key.contains(key_contains, autoescape=True))
        .order_by(Source.key)
    )
    return [(source.uri, label, float(score)) for source, label, score in rows]
