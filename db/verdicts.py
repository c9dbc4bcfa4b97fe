"""What follows a new verdict, in the transaction that writes it: its audit event, a
review row when the policy sent it to people, and an outbox event for other systems when
it was flagged or needs review."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from sqlalchemy.orm import Session

from db.audit import AuditActions, NewEvent, append_events
from db.models import Action
from db.outbox import add_event
from db.reviews import open_reviews

OUTBOUND_ACTIONS = {Action.FLAGGED: "verdict.flagged", Action.NEEDS_REVIEW: "verdict.needs_review"}


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
