"""Request and response bodies for policy, audit and API-key endpoints."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas import Timestamp
from db.audit import event_as_dict
from db.models import ApiKey, AuditEvent, Policy
from db.policy import CheckName, DryRun

RoleName = Literal["submitter", "reviewer", "auditor", "admin"]


class PolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    low: float = Field(ge=0.0, le=1.0, description="ai_score below this is cleared")
    high: float = Field(ge=0.0, le=1.0, description="ai_score at or above this is flagged")
    robustness_check: CheckName = Field(
        default="hflip",
        description="Variant scored too; a disagreeing action sends the image to review",
    )
    blind_review: bool = Field(default=False, description="Hide scores from reviewers")
    note: str = Field(default="", max_length=2000)


class PolicyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    version: int
    low: float
    high: float
    robustness_check: str
    blind_review: bool
    note: str
    created_by: str
    created_at: Timestamp

    @classmethod
    def build(cls, policy: Policy) -> PolicyOut:
        return cls.model_validate(policy)


class DryRunOut(BaseModel):
    verdicts: int = Field(description="Past verdicts considered")
    changed: int = Field(description="How many would get another action")
    review_queue: int = Field(description="needs_review verdicts under the draft")
    transitions: dict[str, dict[str, int]] = Field(
        description="current action → draft action → count ('none': written before policies)"
    )
    by_action_now: dict[str, int]
    by_action_proposed: dict[str, int]

    @classmethod
    def build(cls, run: DryRun) -> DryRunOut:
        return cls(
            verdicts=run.verdicts,
            changed=run.changed,
            review_queue=run.review_queue,
            transitions=run.transitions,
            by_action_now=run.by_action_now,
            by_action_proposed=run.by_action_proposed,
        )


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    role: RoleName


class KeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    key_id: str
    name: str
    role: str
    created_by: str
    created_at: Timestamp
    revoked_at: Timestamp | None
    last_used_at: Timestamp | None

    @classmethod
    def build(cls, key: ApiKey) -> KeyOut:
        return cls.model_validate(key)


class IssuedKeyOut(KeyOut):
    token: str = Field(description="The key itself: shown once, only a hash is stored")


class KeyListOut(BaseModel):
    items: list[KeyOut]


class AuditEventOut(BaseModel):
    id: int
    occurred_at: str
    actor: str
    action: str
    subject_type: str
    subject_id: str
    before: Any
    after: Any
    prev_hash: str
    hash: str

    @classmethod
    def build(cls, event: AuditEvent) -> AuditEventOut:
        return cls(**event_as_dict(event))


class AuditPageOut(BaseModel):
    items: list[AuditEventOut]
    next_cursor: str | None


class ChainOut(BaseModel):
    ok: bool
    checked: int
    broken_at: int | None
    reason: str | None
