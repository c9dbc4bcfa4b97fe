"""The relay as a Celery task on the ``notifications`` queue, for deployments that would
rather have Celery beat send it (``beat_schedule`` in workers.celery_app) than run
``modscan relay``. Both may run at once: claims never overlap."""

from __future__ import annotations

import logging

from modscan.settings import get_settings
from workers.celery_app import RELAY_TASK, app
from workers.outbound.relay import run_relay

log = logging.getLogger(__name__)

# Well below the beat interval's multiples and the broker's visibility timeout.
TASK_BUDGET_S = 50.0


@app.task(name=RELAY_TASK, acks_late=True, ignore_result=True)
def relay_outbox() -> None:
    """Deliver whatever is due, then return; a redelivered task just finds less to do."""
    settings = get_settings()
    if not settings.outbox_targets:
        log.debug("outbox relay: no outbound target configured")
        return
    stats = run_relay(settings, until_idle=True, stop_after=TASK_BUDGET_S)
    if stats.claimed:
        log.info(
            "outbox relay: %d delivered, %d failed, %d handed back",
            stats.delivered,
            stats.failed,
            stats.released,
        )
