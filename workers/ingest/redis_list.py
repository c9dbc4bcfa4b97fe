"""Queue ingest from a Redis list: MinIO's Redis notification target in its ``access`` format.

MinIO RPUSHes one JSON element per event (``[{"Event": [record], "EventTime": ...}]``) onto a
list. Delivery stays at-least-once: each element is moved atomically to ``<key>:processing``
(``BLMOVE``), ingested through the same :func:`workers.ingest.register.ingest_refs` as the
SQS path, and only then removed from there. A consumer killed mid-message leaves the element in
``<key>:processing``; the next consumer moves it back to the head of the list before anything
else. An element that cannot parse is logged with its body and moved to ``<key>:invalid``.

Run one consumer per list: a starting consumer takes back whatever another one has in flight.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from modscan.settings import Settings
from workers.dispatch import Dispatch
from workers.ingest.messages import InvalidMessage, SourceRef, parse_message
from workers.ingest.register import IngestStats, ingest_refs, stream_scan_id

__all__ = ["RedisLists", "consume_redis_list", "restore_processing"]

log = logging.getLogger(__name__)

# Redis reads a blocking timeout of 0 as "forever": never ask for less than this.
_MIN_WAIT_S = 0.1


@dataclass(frozen=True)
class RedisLists:
    """The list MinIO pushes to, and the two the consumer keeps beside it."""

    key: str

    @property
    def processing(self) -> str:
        return f"{self.key}:processing"

    @property
    def invalid(self) -> str:
        return f"{self.key}:invalid"


def redis_client(redis_url: str) -> Any:
    import redis

    return redis.Redis.from_url(redis_url, socket_connect_timeout=5, health_check_interval=30)


def stream_source(redis_url: str, key: str) -> str:
    """The stream scan's source: the server, database and key, without any password."""
    parts = urlsplit(redis_url)
    netloc = parts.hostname or ""
    if ":" in netloc:  # an IPv6 address
        netloc = f"[{netloc}]"
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", key))


def restore_processing(client: Any, lists: RedisLists) -> int:
    """Move elements a killed consumer left in flight back to the head of the list, in order.

    Each move is one atomic ``LMOVE``, so being killed here loses nothing either.
    """
    restored = 0
    while client.lmove(lists.processing, lists.key, "RIGHT", "LEFT") is not None:
        restored += 1
    return restored


def _take(client: Any, lists: RedisLists, limit: int, wait_s: float) -> list[bytes]:
    """Up to ``limit`` elements, moved to the processing list; blocks only for the first."""
    first = client.blmove(lists.key, lists.processing, wait_s, "LEFT", "RIGHT")
    if first is None:
        return []
    batch: list[bytes] = [first]
    while len(batch) < limit:
        element = client.lmove(lists.key, lists.processing, "LEFT", "RIGHT")
        if element is None:
            break
        batch.append(element)
    return batch


def _set_aside(client: Any, lists: RedisLists, element: bytes, reason: InvalidMessage) -> None:
    """Log an element that can never parse and move it to the invalid list."""
    log.error(
        "moving invalid element of %s to %s: %s; body: %.500s",
        lists.key,
        lists.invalid,
        reason,
        element.decode("utf-8", errors="replace"),
    )
    with client.pipeline(transaction=True) as pipe:
        pipe.rpush(lists.invalid, element)
        pipe.lrem(lists.processing, 1, element)
        pipe.execute()


def _finish(client: Any, lists: RedisLists, elements: list[bytes]) -> None:
    """Drop handled elements from the processing list: only now are they delivered."""
    if not elements:
        return
    with client.pipeline(transaction=True) as pipe:
        for element in elements:
            pipe.lrem(lists.processing, 1, element)
        pipe.execute()


def _ingest_batch(
    settings: Settings,
    client: Any,
    lists: RedisLists,
    batch: list[bytes],
    *,
    stream_scan_id: int,
    dispatch: Dispatch,
    stats: IngestStats,
) -> None:
    """Register and dispatch a batch's objects, then drop its elements from processing."""
    refs: list[SourceRef] = []
    parsed: list[bytes] = []
    for element in batch:
        try:
            refs.extend(parse_message(element))
        except InvalidMessage as exc:
            stats.invalid += 1
            _set_aside(client, lists, element, exc)
            continue
        parsed.append(element)
    stats.messages += len(batch)
    stats.refs += len(refs)
    stats.dispatched += ingest_refs(
        settings, refs, stream_scan_id=stream_scan_id, dispatch=dispatch
    )
    _finish(client, lists, parsed)


def consume_redis_list(
    settings: Settings,
    redis_url: str,
    key: str,
    dispatch: Dispatch,
    *,
    max_messages: int | None = None,
    idle_timeout_s: float | None = None,
    wait_time_s: float = 5.0,
    batch_size: int = 10,
) -> IngestStats:
    """Pop the list until max_messages were handled or it stayed idle too long.

    Elements left in the processing list are handled first. Up to ``batch_size`` elements
    are registered in one transaction.
    """
    client = redis_client(redis_url)
    lists = RedisLists(key)
    try:
        restored = restore_processing(client, lists)
        if restored:
            log.warning("moved %d unfinished elements back from %s", restored, lists.processing)
        stream_scan = stream_scan_id(settings, stream_source(redis_url, key))
        wait_s = wait_time_s if idle_timeout_s is None else min(wait_time_s, idle_timeout_s)
        wait_s = max(wait_s, _MIN_WAIT_S)
        stats = IngestStats()
        idle_since = time.monotonic()
        while max_messages is None or stats.messages < max_messages:
            limit = batch_size if max_messages is None else max_messages - stats.messages
            batch = _take(client, lists, min(batch_size, limit), wait_s)
            if not batch:
                if idle_timeout_s is not None and time.monotonic() - idle_since > idle_timeout_s:
                    break
                continue
            idle_since = time.monotonic()
            _ingest_batch(
                settings,
                client,
                lists,
                batch,
                stream_scan_id=stream_scan,
                dispatch=dispatch,
                stats=stats,
            )
        return stats
    finally:
        client.close()
