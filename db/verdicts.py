"""Verdicts: writing a batch's outcomes (images, verdicts, item statuses) and what follows
a new verdict in the same transaction: its audit event, a review row when the policy sent
it to people, and an outbox event for other systems when it was flagged or needs review.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, cast

from sqlalchemy import BigInteger, String, Table, Text, bindparam, column, select, update, values
from sqlalchemy import cast as sa_cast
from sqlalchemy.orm import Session

from db.audit import AuditActions, NewEvent, append_events
from db.models import Action, Image, ItemStatus, Label, ScanItem, Verdict, utcnow
from db.outbox import Topics, add_event
from db.policy import PolicyRule
from db.reviews import open_reviews
from db.scans import complete_finished_scans
from db.upsert import insert_ignore

OUTBOUND_ACTIONS = {
    Action.FLAGGED: Topics.VERDICT_FLAGGED,
    Action.NEEDS_REVIEW: Topics.VERDICT_NEEDS_REVIEW,
}


@dataclass(frozen=True)
class NewVerdict:
    id: int
    image_sha256: str
    model_name: str
    model_version: str
    ai_score: float
    label: str
    action: str | None
    policy_version: int | None
    check_score: float | None


def publish_new_verdicts(
    session: Session, verdicts: Sequence[NewVerdict], *, outbox_targets: Sequence[str], actor: str
) -> None:
    if not verdicts:
        return
    append_events(
        session,
        [
            NewEvent(
                actor=actor,
                action=AuditActions.VERDICT_WRITTEN,
                subject_type="verdict",
                subject_id=str(v.id),
                after=asdict(v),
            )
            for v in verdicts
        ],
    )
    open_reviews(session, [v.id for v in verdicts if v.action == Action.NEEDS_REVIEW])
    if outbox_targets:
        for v in verdicts:
            topic = OUTBOUND_ACTIONS.get(v.action or "")
            if topic is not None:
                add_event(session, targets=outbox_targets, topic=topic, payload=asdict(v))


def _update_items_from_values(session: Session, table: Table, params: list[dict[str, Any]]) -> int:
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
    result = session.execute(
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
    return int(result.rowcount)  # type: ignore[attr-defined]


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
) -> int:
    """Write one batch: images, verdicts and item statuses, in the caller's transaction.

    New verdicts get the policy's action; their audit events, review rows and outbox
    events are written in the same transaction (see db.verdicts). Returns how many of the
    items were already final: another delivery did this work too (a batch that outlived
    the broker's visibility timeout), and the first write stands.
    """
    if not outcomes:
        return 0
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
                "label": Label.AI if (o.ai_score or 0.0) >= model.threshold else Label.REAL,
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
        return 0
    table = cast(Table, ScanItem.__table__)
    if session.get_bind().dialect.name == "postgresql":
        updated = _update_items_from_values(session, table, params)
        complete_finished_scans(session, [o.scan_id for o in outcomes])
        return len(params) - updated
    result = session.connection().execute(
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
    return len(params) - int(result.rowcount)
