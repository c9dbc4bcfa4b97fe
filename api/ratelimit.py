"""Requests per minute per API key: a fixed one-minute window.

With a Redis broker configured the counters live in Redis, shared by every API process;
otherwise they are kept in this process.
"""

from __future__ import annotations

import threading
import time
from functools import lru_cache
from typing import Any

from modscan.settings import Settings

_local: dict[tuple[str, int], int] = {}
_local_lock = threading.Lock()


@lru_cache(maxsize=4)
def _redis(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)


def _count_local(key_id: str, window: int) -> int:
    with _local_lock:
        for stale in [k for k in _local if k[1] < window]:
            del _local[stale]
        _local[(key_id, window)] = _local.get((key_id, window), 0) + 1
        return _local[(key_id, window)]


def _count_redis(url: str, key_id: str, window: int) -> int | None:
    import redis

    name = f"modscan:ratelimit:{key_id}:{window}"
    try:
        pipe = _redis(url).pipeline()
        pipe.incr(name)
        pipe.expire(name, 120)
        count, _ = pipe.execute()
    except redis.RedisError:
        return None  # the limiter failing must not take the API down: fall back to local
    return int(count)


def check_rate(settings: Settings, key_id: str) -> int | None:
    """None when the request may go ahead, else the seconds until the window resets."""
    limit = settings.api_rate_limit_per_minute
    if limit <= 0:
        return None
    now = time.time()
    window = int(now // 60)
    url = settings.broker_url
    count = None
    if url and url.startswith(("redis://", "rediss://")):
        count = _count_redis(url, key_id, window)
    if count is None:
        count = _count_local(key_id, window)
    if count > limit:
        return max(1, int(60 - now % 60))
    return None
