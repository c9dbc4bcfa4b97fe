"""The moderation policy: which ai_score is flagged, cleared or sent to review.

Policies are versioned rows that are never changed; the highest version is in force. The
first version is made from the model card (its calibrated uncertain band) when a verdict
needs a policy and none exists yet. Every verdict stores the version that decided it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy import case, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.audit import AuditActions, append_event
from db.models import Action, Policy, Verdict

# The policy's robustness checks: a variant of ``workers.classifier.variants``, or off.
CheckName = Literal["off", "hflip", "jpeg_q75"]
CHECKS: tuple[str, ...] = get_args(CheckName)
SYSTEM_ACTOR = "system"


class InvalidPolicy(ValueError):
    pass


class PolicyConflict(RuntimeError):
    """Another change took the same version number first; retry."""


@dataclass(frozen=True)
class PolicyRule:
    """A policy version as plain data: safe to hand between threads and sessions."""

    version: int
    low: float
    high: float
    robustness_check: str
    blind_review: bool

    def band_action(self, score: float) -> str:
        if score >= self.high:
            return Action.FLAGGED
        if score < self.low:
            return Action.CLEARED
        return Action.NEEDS_REVIEW

    def decide(self, score: float, check_score: float | None = None) -> str:
        """The action for a score; a robustness check that lands elsewhere means review."""
        action = self.band_action(score)
        if check_score is not None and self.band_action(check_score) != action:
            return Action.NEEDS_REVIEW
        return action

    def needs_check(self, score: float) -> bool:
        """Whether the check could change this score's action (in-band goes to review anyway)."""
        return self.robustness_check != "off" and self.band_action(score) != Action.NEEDS_REVIEW


@dataclass(frozen=True)
class PolicyDraft:
    low: float
    high: float
    robustness_check: str = "hflip"
    blind_review: bool = False
    note: str = ""

    def validate(self) -> None:
        if not (0.0 <= self.low <= self.high <= 1.0):
            raise InvalidPolicy(f"need 0 <= low <= high <= 1, got low={self.low} high={self.high}")
        if self.robustness_check not in CHECKS:
            raise InvalidPolicy(f"robustness_check must be one of {', '.join(CHECKS)}")


def rule_of(policy: Policy) -> PolicyRule:
    return PolicyRule(
        version=policy.version,
        low=policy.low,
        high=policy.high,
        robustness_check=policy.robustness_check,
        blind_review=policy.blind_review,
    )


def policy_dict(policy: Policy) -> dict[str, Any]:
    return {
        "version": policy.version,
        "low": policy.low,
        "high": policy.high,
        "robustness_check": policy.robustness_check,
        "blind_review": policy.blind_review,
        "note": policy.note,
        "created_by": policy.created_by,
        "created_at": policy.created_at.isoformat(),
    }


def current_policy(session: Session) -> Policy | None:
    return session.scalar(select(Policy).order_by(Policy.version.desc()).limit(1))


def default_draft(band: tuple[float, float] | None, threshold: float) -> PolicyDraft:
    """The card's uncertain band; an uncalibrated card sends everything near its threshold
    (±0.25) to review."""
    if band is not None:
        low, high = band
    else:
        low, high = max(0.0, threshold - 0.25), min(1.0, threshold + 0.25)
    return PolicyDraft(
        low=round(low, 4),
        high=round(high, 4),
        note="default from the model card's uncertain band",
    )


def change_policy(session: Session, draft: PolicyDraft, *, actor: str) -> Policy:
    """Write the next version and audit the change (in the caller's transaction)."""
    draft.validate()
    before = current_policy(session)
    version = (before.version if before else 0) + 1
    policy = Policy(version=version, created_by=actor, **asdict(draft))
    try:
        with session.begin_nested():
            session.add(policy)
            session.flush()
    except IntegrityError as exc:
        raise PolicyConflict(f"policy version {version} was written concurrently") from exc
    append_event(
        session,
        actor=actor,
        action=AuditActions.POLICY_CHANGED,
        subject_type="policy",
        subject_id=str(version),
        before=policy_dict(before) if before else None,
        after=policy_dict(policy),
    )
    return policy


def policy_in_force(
    session: Session, *, band: tuple[float, float] | None, threshold: float
) -> PolicyRule:
    """The current policy; the first version is created from the card if there is none."""
    found = current_policy(session)
    if found is not None:
        return rule_of(found)
    try:
        return rule_of(change_policy(session, default_draft(band, threshold), actor=SYSTEM_ACTOR))
    except PolicyConflict:  # another worker made version 1 at the same moment
        found = current_policy(session)
        assert found is not None
        return rule_of(found)


# --- dry run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DryRun:
    verdicts: int
    changed: int
    transitions: dict[str, dict[str, int]]  # current action → proposed action → count
    by_action_now: dict[str, int]
    by_action_proposed: dict[str, int]

    @property
    def review_queue(self) -> int:
        return self.by_action_proposed.get(Action.NEEDS_REVIEW, 0)


def _band_case(score: Any, low: float, high: float) -> Any:
    return case(
        (score >= high, Action.FLAGGED),
        (score < low, Action.CLEARED),
        else_=Action.NEEDS_REVIEW,
    )


def dry_run(
    session: Session,
    draft: PolicyDraft,
    *,
    since: datetime | None = None,
    model_name: str | None = None,
    model_version: str | None = None,
) -> DryRun:
    """If the thresholds were the draft's, how would past verdicts' actions change?

    Verdicts written before policies existed count as action "none" today. The check
    scores already stored are reused; verdicts scored without a check are judged on their
    score alone.
    """
    draft.validate()
    primary = _band_case(Verdict.ai_score, draft.low, draft.high)
    checked = _band_case(Verdict.check_score, draft.low, draft.high)
    if draft.robustness_check == "off":
        proposed = primary
    else:
        proposed = case(
            (Verdict.check_score.is_(None), primary),
            (checked != primary, Action.NEEDS_REVIEW),
            else_=primary,
        )
    now = func.coalesce(Verdict.action, "none")
    query = select(now, proposed, func.count()).group_by(now, proposed)
    if since is not None:
        query = query.where(Verdict.created_at >= since)
    if model_name is not None:
        query = query.where(Verdict.model_name == model_name)
    if model_version is not None:
        query = query.where(Verdict.model_version == model_version)
    transitions: dict[str, dict[str, int]] = {}
    by_now: dict[str, int] = {}
    by_proposed: dict[str, int] = {}
    total = changed = 0
    for current, new, n in session.execute(query):
        transitions.setdefault(current, {})[new] = n
        by_now[current] = by_now.get(current, 0) + n
        by_proposed[new] = by_proposed.get(new, 0) + n
        total += n
        if current != new:
            changed += n
    return DryRun(total, changed, transitions, by_now, by_proposed)
