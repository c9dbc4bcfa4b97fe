"""API keys: issue, look up, list and revoke. Only a hash of each secret is stored.

A key reads ``msk_<key_id>_<secret>``. The secret carries 256 bits from ``secrets``, so a
plain SHA-256 is enough (no slow hash is needed against guessing); lookup is by ``key_id``
and the comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.audit import AuditActions, append_event
from db.models import ApiKey, Role, as_utc, utcnow

PREFIX = "msk_"


class UnknownKey(LookupError):
    pass


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    token: str  # shown once, never stored


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def split_token(token: str) -> tuple[str, str] | None:
    """(key_id, secret) of a well-formed token, else None."""
    if not token.startswith(PREFIX):
        return None
    key_id, sep, secret = token[len(PREFIX) :].partition("_")
    if not sep or not (8 <= len(key_id) <= 32) or not (20 <= len(secret) <= 128):
        return None
    return key_id, secret


def issue_key(session: Session, *, name: str, role: str, actor: str) -> IssuedKey:
    if role not in Role.ALL:
        raise ValueError(f"role must be one of {', '.join(Role.ALL)}, got {role!r}")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    key = ApiKey(key_id=key_id, secret_hash=_hash(secret), name=name, role=role, created_by=actor)
    session.add(key)
    session.flush()
    append_event(
        session,
        actor=actor,
        action=AuditActions.KEY_ISSUED,
        subject_type="api_key",
        subject_id=key_id,
        after={"key_id": key_id, "name": name, "role": role},
    )
    return IssuedKey(key=key, token=f"{PREFIX}{key_id}_{secret}")


def authenticate(session: Session, token: str) -> ApiKey | None:
    """The live key this token belongs to, or None (unknown, wrong secret or revoked)."""
    parts = split_token(token)
    if parts is None:
        return None
    key_id, secret = parts
    key = session.scalar(select(ApiKey).where(ApiKey.key_id == key_id))
    if key is None or key.revoked_at is not None:
        return None
    if not hmac.compare_digest(key.secret_hash, _hash(secret)):
        return None
    return key


def touch(session: Session, key: ApiKey) -> bool:
    """Record use, at most once a minute per key (a write per request would be wasteful).

    Returns whether it wrote; committing is the caller's, as everywhere in ``db``.
    """
    now = utcnow()
    last = as_utc(key.last_used_at)
    if last is None or (now - last).total_seconds() > 60:
        session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now))
        return True
    return False


def list_keys(session: Session, *, include_revoked: bool = False) -> list[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.id)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    return list(session.scalars(query))


def revoke_key(session: Session, *, key_id: str, actor: str) -> ApiKey:
    key = session.scalar(select(ApiKey).where(ApiKey.key_id == key_id))
    if key is None:
        raise UnknownKey(key_id)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        append_event(
            session,
            actor=actor,
            action=AuditActions.KEY_REVOKED,
            subject_type="api_key",
            subject_id=key_id,
            before={"revoked": False},
            after={"revoked": True},
        )
        session.flush()
    return key
