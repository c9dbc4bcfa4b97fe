"""Named leases: one holder across the fleet at a time, until the lease runs out.

A holder takes a free or expired lease, or renews its own, in one guarded write; whoever's
write lands owns it. Nothing needs releasing: a holder that dies just lets it run out.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from db.models import Lease, utcnow
from db.upsert import insert_ignore


def acquire_lease(session: Session, name: str, *, holder: str, ttl_s: float) -> bool:
    """Take or renew lease ``name`` for ``ttl_s`` seconds; True if ``holder`` now has it."""
    now = utcnow()
    until = now + timedelta(seconds=ttl_s)
    session.execute(
        insert_ignore(session, Lease.__table__, ["name"]),
        [{"name": name, "holder": holder, "expires_at": until}],
    )
    taken = session.execute(
        update(Lease)
        .where(Lease.name == name, or_(Lease.holder == holder, Lease.expires_at < now))
        .values(holder=holder, expires_at=until)
        .execution_options(synchronize_session=False)
    )
    return bool(taken.rowcount)  # type: ignore[attr-defined]
