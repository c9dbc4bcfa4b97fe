"""Rescan queries: which sources to score again, and which verdicts a rescan flipped."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.items import SourceRecord
from db.models import ScanItem, Source, Verdict

__all__ = ["Flip", "RescanReport", "choose_sources", "compare", "source_record"]


def choose_sources(
    session: Session, *, scan_id: int | None = None, since: datetime | None = None
) -> list[tuple[Source, str]]:
    """One source per image with a verdict (its latest sighting) in the chosen scope."""
    latest = (
        select(ScanItem.image_sha256, func.max(ScanItem.id).label("item_id"))
        .where(ScanItem.verdict_id.is_not(None))
        .group_by(ScanItem.image_sha256)
    )
    if scan_id is not None:
        latest = latest.where(ScanItem.scan_id == scan_id)
    if since is not None:
        latest = latest.join(Verdict, ScanItem.verdict_id == Verdict.id).where(
            Verdict.created_at >= since
        )
    sub = latest.subquery()
    query = (
        select(Source, sub.c.image_sha256)
        .join(ScanItem, ScanItem.source_id == Source.id)
        .join(sub, ScanItem.id == sub.c.item_id)
        .order_by(Source.id)
    )
    return [(source, sha) for source, sha in session.execute(query)]


def source_record(source: Source) -> SourceRecord:
    return SourceRecord(
        scheme=source.scheme,
        bucket=source.bucket,
        key=source.key,
        version_id=source.version_id,
        etag=source.etag,
        size=source.size,
        version=source.version,
    )


@dataclass(frozen=True)
class Flip:
    uri: str
    sha256: str
    old_model: str
    old_label: str
    old_score: float
    old_action: str | None
    new_label: str
    new_score: float
    new_action: str | None


@dataclass
class RescanReport:
    rescan_id: int
    model: str
    compared: int = 0
    label_flips: int = 0
    action_flips: int = 0
    changed_bytes: int = 0  # the object no longer holds the bytes that were scored
    errors: int = 0
    flips: list[Flip] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rescan_id": self.rescan_id,
            "model": self.model,
            "compared": self.compared,
            "label_flips": self.label_flips,
            "action_flips": self.action_flips,
            "changed_bytes": self.changed_bytes,
            "errors": self.errors,
            "flips": [f.__dict__ for f in self.flips],
        }


def previous_verdicts(
    session: Session, shas: list[str], exclude: tuple[str, str]
) -> dict[str, Verdict]:
    """Each image's latest verdict by any other model version."""
    found: dict[str, Verdict] = {}
    for start in range(0, len(shas), 1000):
        rows = session.scalars(
            select(Verdict)
            .where(Verdict.image_sha256.in_(shas[start : start + 1000]))
            .order_by(Verdict.id)
        )
        for v in rows:
            if (v.model_name, v.model_version) != exclude:
                found[v.image_sha256] = v
    return found


def compare(
    session: Session, rescan_id: int, *, chosen: dict[str, str], model: tuple[str, str]
) -> RescanReport:
    """Compare the rescan's verdicts with the images' previous ones.

    ``chosen`` maps each source's identity key to the sha256 scored before.
    """
    report = RescanReport(rescan_id=rescan_id, model=f"{model[0]} {model[1]}")
    rows = session.execute(
        select(ScanItem, Source, Verdict)
        .join(Source, ScanItem.source_id == Source.id)
        .outerjoin(Verdict, ScanItem.verdict_id == Verdict.id)
        .where(ScanItem.scan_id == rescan_id)
        .order_by(ScanItem.id)
    ).all()
    new_by_sha = {v.image_sha256: (source, v) for _, source, v in rows if v is not None}
    report.errors = sum(1 for item, _, v in rows if v is None)
    report.changed_bytes = sum(
        1
        for item, source, _ in rows
        if item.image_sha256 is not None and chosen.get(source.uri) not in (None, item.image_sha256)
    )
    previous = previous_verdicts(session, sorted(new_by_sha), model)
    for sha, (source, new) in new_by_sha.items():
        old = previous.get(sha)
        if old is None:
            continue
        report.compared += 1
        label_flip = old.label != new.label
        action_flip = old.action is not None and new.action is not None and old.action != new.action
        report.label_flips += label_flip
        report.action_flips += action_flip
        if label_flip or action_flip:
            report.flips.append(
                Flip(
                    uri=source.uri,
                    sha256=sha,
                    old_model=f"{old.model_name} {old.model_version}",
                    old_label=old.label,
                    old_score=old.ai_score,
                    old_action=old.action,
                    new_label=new.label,
                    new_score=new.ai_score,
                    new_action=new.action,
                )
            )
    return report
