"""The sweep: find the work the broker no longer holds and hand it out again, without an
operator.

Every worker process runs a :class:`Sweeper` thread, but a lease in the database lets one
of the fleet sweep at a time: no extra service to deploy or forget (a beat service would be
one more process whose absence silently turns recovery off), and the embedded mode needs
none. The sweep goes through the same code as ``modscan requeue`` (``workers.requeue``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid

from db.leases import acquire_lease
from db.session import session_scope
from modscan.settings import Settings
from workers.dispatch import Enqueuer
from workers.requeue import RequeueStats, requeue_stale
from workers.transient import OUTAGE, is_transient

log = logging.getLogger(__name__)

LEASE = "sweep"


def sweep_once(settings: Settings, *, holder: str) -> RequeueStats | None:
    """Sweep if this holder gets the fleet's sweep lease; None when another holds it."""
    with session_scope(settings.resolved_database_url) as session:
        # Held for two intervals: a holder that stops renewing hands over soon after.
        if not acquire_lease(session, LEASE, holder=holder, ttl_s=2 * settings.sweep_interval_s):
            return None
    stats = requeue_stale(settings, Enqueuer(settings), older_than_s=settings.sweep_after_s)
    if stats.scans or stats.items:
        log.warning(
            "sweep: re-enqueued %d listings and %d items untouched for %.0fs",
            stats.scans,
            stats.items,
            settings.sweep_after_s,
        )
    return stats


class Sweeper:
    """A daemon thread that sweeps every ``sweep_interval_s`` while it holds the lease."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.holder = f"{socket.gethostname()[:32]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="modscan-sweep", daemon=True)

    def start(self) -> None:
        if self.settings.sweep_interval_s > 0 and self.settings.broker_url:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.settings.sweep_interval_s):
            try:
                sweep_once(self.settings, holder=self.holder)
                OUTAGE.succeeded()
            except Exception as exc:
                if not is_transient(exc):
                    log.exception(
                        "sweep failed; trying again in %.0fs", self.settings.sweep_interval_s
                    )
                    continue
                OUTAGE.failed(exc, retry_s=self.settings.transient_retry_s)
