"""The outbox relay: lease due events, deliver them, record each outcome.

Each round claims a batch in one short transaction (see :mod:`db.outbox`), delivers it with
no transaction open, and records every outcome in its own transaction. Delivery is
at-least-once: a relay killed mid-round leaves its leased rows to be taken again once the
lease has run out. Run as many relays as you like on PostgreSQL (``SKIP LOCKED``).

Within a round, once a target fails, its remaining events are handed back untried: a down
webhook costs one request per round, not one timeout per event.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields

from db.outbox import ClaimedMessage, claim_due, mark_delivered, mark_failed, release
from db.session import session_scope
from modscan.settings import Settings
from workers.outbound.targets import DeliveryError, Target, build_targets
from workers.transient import OUTAGE, backoff_s, is_transient

__all__ = ["OutboxNotConfigured", "RelayStats", "relay_once", "run_relay"]

log = logging.getLogger(__name__)


class OutboxNotConfigured(Exception):
    """No outbound target is configured: there is nothing for a relay to do."""


@dataclass
class RelayStats:
    claimed: int = 0
    delivered: int = 0
    failed: int = 0  # tries that failed; the event is retried later (or given up on)
    released: int = 0  # claimed but handed back untried

    def add(self, other: RelayStats) -> None:
        for field in fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))


def _record_failure(settings: Settings, message: ClaimedMessage, error: str) -> None:
    with session_scope(settings.resolved_database_url) as session:
        mark_failed(
            session,
            message,
            error,
            base_s=settings.outbox_backoff_s,
            max_s=settings.outbox_backoff_max_s,
        )
    if message.attempt >= settings.outbox_max_attempts:
        log.error(
            "outbox: giving up on event %s for %s after %d attempts: %s",
            message.event_id,
            message.target,
            message.attempt,
            error,
        )


def relay_once(
    settings: Settings, *, limit: int = 100, targets: Mapping[str, Target] | None = None
) -> RelayStats:
    """One round: claim up to ``limit`` due events and try each once.

    ``targets`` defaults to those the settings configure (built, used and closed here).
    """
    own = targets is None
    active: Mapping[str, Target] = build_targets(settings) if targets is None else targets
    if not active:
        raise OutboxNotConfigured("no outbound target is configured (MODSCAN_OUTBOX_*)")
    url = settings.resolved_database_url
    stats = RelayStats()
    try:
        with session_scope(url) as session:
            claimed = claim_due(
                session,
                targets=list(active),
                limit=limit,
                lease_s=settings.outbox_lease_s,
                max_attempts=settings.outbox_max_attempts,
            )
        stats.claimed = len(claimed)
        # Start nothing past half the lease, so no delivery outlives it.
        deadline = time.monotonic() + settings.outbox_lease_s / 2
        broken: set[str] = set()
        for index, message in enumerate(claimed):
            if time.monotonic() > deadline:
                rest = claimed[index:]
                with session_scope(url) as session:
                    release(session, rest)
                stats.released += len(rest)
                break
            if message.target in broken:
                with session_scope(url) as session:
                    release(session, [message])
                stats.released += 1
                continue
            try:
                active[message.target].deliver(message)
            except DeliveryError as exc:
                log.warning(
                    "outbox: event %s to %s failed (attempt %d): %s",
                    message.event_id,
                    message.target,
                    message.attempt,
                    exc,
                )
                _record_failure(settings, message, str(exc))
                broken.add(message.target)
                stats.failed += 1
                continue
            except Exception as exc:
                # A bug, not an outage: keep the traceback, and let max_attempts bound it.
                log.exception("outbox: event %s to %s raised", message.event_id, message.target)
                _record_failure(settings, message, f"{type(exc).__name__}: {exc}")
                stats.failed += 1
                continue
            with session_scope(url) as session:
                mark_delivered(session, message)
            stats.delivered += 1
    finally:
        if own:
            for target in active.values():
                target.close()
    return stats


def run_relay(
    settings: Settings,
    *,
    poll_s: float | None = None,
    stop_after: float | None = None,
    until_idle: bool = False,
    limit: int = 100,
    stop: threading.Event | None = None,
) -> RelayStats:
    """Relay rounds until ``stop`` is set, ``stop_after`` seconds have passed, or (with
    ``until_idle``) a round leaves nothing due. Idle rounds wait ``poll_s`` seconds
    (default: the setting); a full batch goes straight on to the next round.

    Database outages are waited out with backoff, logged when they start and end (with
    ``until_idle`` they are raised).
    """
    poll = settings.outbox_poll_s if poll_s is None else poll_s
    stop = stop or threading.Event()
    ends = None if stop_after is None else time.monotonic() + stop_after
    targets = build_targets(settings)
    if not targets:
        raise OutboxNotConfigured("no outbound target is configured (MODSCAN_OUTBOX_*)")
    total = RelayStats()
    outage = 0
    try:
        while not stop.is_set() and (ends is None or time.monotonic() < ends):
            try:
                stats = relay_once(settings, limit=limit, targets=targets)
            except Exception as exc:
                if until_idle or not is_transient(exc):
                    raise
                OUTAGE.failed(exc, retry_s=float("inf"))
                stop.wait(backoff_s(outage, cap_s=settings.transient_backoff_max_s))
                outage = min(outage + 1, 16)
                continue
            OUTAGE.succeeded()
            outage = 0
            total.add(stats)
            busy = stats.claimed >= limit and stats.released == 0
            if until_idle and not busy:
                break
            if not busy:
                stop.wait(poll if ends is None else max(0.0, min(poll, ends - time.monotonic())))
    finally:
        for target in targets.values():
            target.close()
    return total
