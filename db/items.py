"""Scan items: registering listed sources, claiming work, recording a batch's outcomes.

Every write here is idempotent, so a redelivered listing page or classify task changes
nothing that is already final.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Select,
    String,
    Table,
    Text,
    bindparam,
    column,
    func,
    literal,
    select,
    update,
    values,
)
from sqlalchemy import cast as sa_cast
from sqlalchemy.orm import Session

from db.models import Image, ItemStatus, ScanItem, Source, Verdict, utcnow
from db.policy import PolicyRule
from db.scans import complete_finished_scans
from db.upsert import insert_ignore
from db.verdicts import NewVerdict, publish_new_verdicts


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


def _work_items_query() -> Select[int, int, str, str, str, str | None, int | None, int]:
    return select(
        ScanItem.id,
        ScanItem.scan_id,
        Source.scheme,
        Source.bucket,
        Source.key,
        Source.version_id,
        Source.size,
        ScanItem.attempts,
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


def add_attempt(session: Session, items: Sequence[WorkItem], max_attempts: int) -> list[WorkItem]:
    """Count one more delivery for each item; dead-letter those past max_attempts.

    Returns the items that may still be processed. Commit before processing, so that a
    worker killed mid-batch leaves the count behind.
    """
    alive = [item for item in items if item.attempts < max_attempts]
    dead = [item for item in items if item.attempts >= max_attempts]
    now = utcnow()
    if alive:
        session.execute(
            update(ScanItem)
            .where(
                ScanItem.id.in_([item.item_id for item in alive]),
                ScanItem.status == ItemStatus.PENDING,
            )
            .values(attempts=ScanItem.attempts + 1, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    if dead:
        session.execute(
            update(ScanItem)
            .where(
                ScanItem.id.in_([item.item_id for item in dead]),
                ScanItem.status == ItemStatus.PENDING,
            )
            .values(
                status=ItemStatus.DEAD,
                error_reason="max_attempts",
                error_detail=func.coalesce(
                    literal(f"gave up after {max_attempts} deliveries; last error: ")
                    + ScanItem.error_detail,
                    literal(f"gave up after {max_attempts} deliveries that did not finish"),
                ),
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        complete_finished_scans(session, [item.scan_id for item in dead])
    return alive


def note_retry_reasons(session: Session, reasons: dict[int, str]) -> None:
    """Keep why a still-pending item failed transiently (shown if it is dead-lettered)."""
    for item_id, reason in reasons.items():
        session.execute(
            update(ScanItem)
            .where(ScanItem.id == item_id, ScanItem.status == ItemStatus.PENDING)
            .values(error_detail=reason[:1000])
            .execution_options(synchronize_session=False)
        )


def _update_items_from_values(session: Session, table: Table, params: list[dict[str, Any]]) -> None:
    """PostgreSQL: one ``UPDATE ... FROM (VALUES ...)`` for the whole batch."""
    rows = values(
        column("id", BigInteger),
        column("status", String),
        column("sha", String),
        column("verdict", BigInteger),
        column("reason", String),
        column("detail", Text),
        name="outcome",
    ).data(
        [
            (p["b_id"], p["b_status"], p["b_sha"], p["b_verdict"], p["b_reason"], p["b_detail"])
            for p in params
        ]
    )
    session.execute(
        update(table)
        .where(table.c.id == rows.c.id, table.c.status == ItemStatus.PENDING)
        .values(
            status=rows.c.status,
            image_sha256=rows.c.sha,
            verdict_id=sa_cast(rows.c.verdict, BigInteger),
            error_reason=rows.c.reason,
            error_detail=rows.c.detail,
            updated_at=params[0]["b_now"],
        )
        .execution_options(synchronize_session=False)
    )


def existing_verdicts(
    session: Session, shas: Sequence[str], *, model_name: str, model_version: str
) -> dict[str, int]:
    """Verdict ids already stored for these images by this model version."""
    if not shas:
        return {}
    rows = session.execute(
        select(Verdict.image_sha256, Verdict.id).where(
            Verdict.image_sha256.in_(sorted(set(shas))),
            Verdict.model_name == model_name,
            Verdict.model_version == model_version,
        )
    )
    return {sha: verdict_id for sha, verdict_id in rows}


@dataclass(frozen=True)
class ImageFacts:
    sha256: str
    size_bytes: int
    width: int
    height: int
    format: str


@dataclass(frozen=True)
class Outcome:
    """What happened to one item. Exactly one of error_reason or image is set."""

    item_id: int
    scan_id: int
    status: str
    image: ImageFacts | None = None
    ai_score: float | None = None  # set when status is scored
    check_score: float | None = None  # the policy's robustness variant, when it was checked
    error_reason: str | None = None
    error_detail: str | None = None


@dataclass(frozen=True)
class ModelStamp:
    name: str
    version: str
    threshold: float
    uncertain_band: tuple[float, float] | None = None  # the card's calibrated band


def _verdict_facts(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("image_sha256", "model_name", "model_version", "ai_score", "label", "action")
    return {k: row[k] for k in keys} | {
        "policy_version": row["policy_version"],
        "check_score": row["check_score"],
    }


def record_outcomes(
    session: Session,
    outcomes: Sequence[Outcome],
    model: ModelStamp,
    *,
    policy: PolicyRule | None = None,
    outbox_targets: Sequence[str] = (),
    actor: str = "worker",
) -> None:
    """Write one batch: images, verdicts and item statuses, in the caller's transaction.

    New verdicts get the policy's action; their audit events, review rows and outbox
    events are written in the same transaction (see db.verdicts).
    """
    if not outcomes:
        return
    now = utcnow()
    images = {o.image.sha256: o.image for o in outcomes if o.image is not None}
    if images:
        session.connection().execute(
            insert_ignore(session, Image.__table__, ["sha256"]),
            [
                {
                    "sha256": f.sha256,
                    "size_bytes": f.size_bytes,
                    "width": f.width,
                    "height": f.height,
                    "format": f.format,
                    "created_at": now,
                }
                for f in images.values()
            ],
        )
    scored = {
        o.image.sha256: o
        for o in outcomes
        if o.status == ItemStatus.SCORED and o.image is not None and o.ai_score is not None
    }
    if scored:
        rows = [
            {
                "image_sha256": sha,
                "model_name": model.name,
                "model_version": model.version,
                "ai_score": o.ai_score,
                "label": "ai" if (o.ai_score or 0.0) >= model.threshold else "real",
                "threshold": model.threshold,
                "created_at": now,
                "action": policy.decide(o.ai_score or 0.0, o.check_score) if policy else None,
                "policy_version": policy.version if policy else None,
                "check_score": o.check_score,
            }
            for sha, o in scored.items()
        ]
        inserted = session.connection().execute(
            insert_ignore(
                session, Verdict.__table__, ["image_sha256", "model_name", "model_version"]
            ).returning(Verdict.__table__.c.id, Verdict.__table__.c.image_sha256),
            rows,
        )
        by_sha = {row["image_sha256"]: row for row in rows}
        fresh = [
            NewVerdict(id=verdict_id, **_verdict_facts(by_sha[sha])) for verdict_id, sha in inserted
        ]
        publish_new_verdicts(session, fresh, outbox_targets=outbox_targets, actor=actor)
    verdict_ids = existing_verdicts(
        session, list(images), model_name=model.name, model_version=model.version
    )
    params = [
        {
            "b_id": o.item_id,
            "b_status": o.status,
            "b_sha": o.image.sha256 if o.image else None,
            "b_verdict": verdict_ids.get(o.image.sha256) if o.image else None,
            "b_reason": o.error_reason,
            "b_detail": o.error_detail,
            "b_now": now,
        }
        for o in outcomes
        # An image whose verdict is not stored (a failed earlier write) stays pending.
        if o.image is None or o.image.sha256 in verdict_ids
    ]
    if not params:
        return
    table = cast(Table, ScanItem.__table__)
    if session.get_bind().dialect.name == "postgresql":
        _update_items_from_values(session, table, params)
        complete_finished_scans(session, [o.scan_id for o in outcomes])
        return
    session.connection().execute(
        update(table)
        .where(table.c.id == bindparam("b_id"), table.c.status == ItemStatus.PENDING)
        .values(
            status=bindparam("b_status"),
            image_sha256=bindparam("b_sha"),
            verdict_id=bindparam("b_verdict"),
            error_reason=bindparam("b_reason"),
            error_detail=bindparam("b_detail"),
            updated_at=bindparam("b_now"),
        ),
        params,
    )
    complete_finished_scans(session, [o.scan_id for o in outcomes])
