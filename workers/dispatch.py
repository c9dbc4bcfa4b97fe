"""Starting scans and handing work to the queues: the one place that enqueues tasks.

``Dispatch`` is what listing and ingest hand their pending items to: the distributed mode's
:class:`Enqueuer` here, or the embedded mode's in-process dispatch (``workers.embedded``).
Celery is imported only when something is sent, so the API and the CLI start without it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from db.items import WorkItem
from db.scans import create_scan, fail_scan
from db.session import session_scope
from modscan.settings import Settings
from workers.sources import InvalidSource, parse_source

__all__ = [
    "BrokerUnavailable",
    "Dispatch",
    "Enqueuer",
    "InvalidSource",
    "chunked",
    "enqueue_listing",
    "send_task",
    "start_scan",
]

log = logging.getLogger(__name__)

Dispatch = Callable[[int, Sequence[WorkItem]], None]
"""Hands a scan's pending items on for classification: ``dispatch(scan_id, items)``."""


def chunked(items: Sequence[WorkItem], size: int) -> list[Sequence[WorkItem]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class BrokerUnavailable(RuntimeError):
    """The task broker could not be reached; nothing was enqueued."""


def send_task(broker_url: str, name: str, kwargs: dict[str, object]) -> None:
    from kombu.exceptions import OperationalError

    from workers.celery_app import app_for

    try:
        app_for(broker_url).send_task(name, kwargs=kwargs, retry=True)
    except (OperationalError, ConnectionError, OSError) as exc:
        raise BrokerUnavailable(f"the task broker is unreachable: {exc}") from exc


def enqueue_listing(broker_url: str, scan_id: int) -> None:
    from workers.celery_app import LIST_TASK

    send_task(broker_url, LIST_TASK, {"scan_id": scan_id})


def start_scan(
    settings: Settings, source_uri: str, *, allow_local: bool = False, actor: str | None = None
) -> int:
    """Create the scan row, commit, then enqueue its listing. Returns the scan id."""
    if not settings.broker_url:
        raise BrokerUnavailable("no broker configured (MODSCAN_BROKER_URL is unset)")
    source = parse_source(source_uri, allow_local=allow_local)
    url = settings.resolved_database_url
    with session_scope(url) as session:
        scan_id = create_scan(session, source_uri=source.uri, kind=source.kind, created_by=actor).id
    try:
        enqueue_listing(settings.broker_url, scan_id)
    except BrokerUnavailable as exc:
        with session_scope(url) as session:
            fail_scan(session, scan_id, str(exc))
        raise
    return scan_id


class Enqueuer:
    """The distributed dispatch: one classify task per chunk, carrying references only."""

    def __init__(self, settings: Settings) -> None:
        if not settings.broker_url:
            raise BrokerUnavailable("no broker configured (MODSCAN_BROKER_URL is unset)")
        self.broker_url = settings.broker_url

    def __call__(self, scan_id: int, items: Sequence[WorkItem]) -> None:
        from workers.celery_app import CLASSIFY_TASK

        payload = {"scan_id": scan_id, "items": [item.to_payload() for item in items]}
        send_task(self.broker_url, CLASSIFY_TASK, payload)
