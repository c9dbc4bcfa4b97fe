"""Transient failures: telling them apart, backing off from them, and saying so once.

A transient failure is one of the surroundings, not of the item: the database or broker is
unreachable, a lock or serialization conflict, a connection cut. Such work is retried with
exponential backoff and jitter for up to ``MODSCAN_TRANSIENT_RETRY_S`` and never counts
toward an item's attempts; only errors about the item itself lead to dead-lettering.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from db.errors import is_transient_db_error
from modscan.settings import Settings

log = logging.getLogger(__name__)


def _broker_errors() -> tuple[type[BaseException], ...]:
    from kombu.exceptions import OperationalError as KombuOperationalError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from workers.dispatch import BrokerUnavailable

    return (BrokerUnavailable, KombuOperationalError, RedisConnectionError, RedisTimeoutError)


def is_transient(exc: BaseException) -> bool:
    """True for database and broker outages, wherever they surface."""
    if is_transient_db_error(exc):
        return True
    current: BaseException | None = exc
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (*_broker_errors(), ConnectionError)):
            return True
        current = current.__cause__ or current.__context__
    return False


def backoff_s(failures: int, *, cap_s: float, base_s: float = 1.0) -> float:
    """Exponential backoff with full jitter in its upper half: 2**failures seconds, capped,
    times a random factor in [0.5, 1), so many retrying workers do not come back at once."""
    delay = min(cap_s, base_s * 2.0 ** max(0, failures))
    return delay * random.uniform(0.5, 1.0)


class OutageLog:
    """One log line when an outage starts and one when it ends, however many tasks and
    items run into it meanwhile (one line per item would bury the log)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._since: float | None = None
        self._lock = threading.Lock()
        self.failures = 0

    @property
    def in_outage(self) -> bool:
        return self._since is not None

    def failed(self, exc: BaseException, *, retry_s: float) -> None:
        with self._lock:
            self.failures += 1
            if self._since is not None:
                return
            self._since = time.monotonic()
        detail = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        horizon = "until it is back" if retry_s == float("inf") else f"for up to {retry_s:.0f}s"
        log.warning(
            "%s unavailable (%s: %s); backing off and retrying %s",
            self.what,
            type(exc).__name__,
            detail,
            horizon,
        )

    def succeeded(self) -> None:
        if self._since is None:  # the common case: no lock, no log
            return
        with self._lock:
            if self._since is None:
                return
            lasted = time.monotonic() - self._since
            failures, self._since, self.failures = self.failures, None, 0
        log.warning(
            "%s reachable again: the outage lasted %.1fs (%d retried calls)",
            self.what,
            lasted,
            failures,
        )


# One per process: the tasks, the embedded dispatch and the sweep all report here.
OUTAGE = OutageLog("database or broker")


T = TypeVar("T")


def call_retrying(fn: Callable[[], T], settings: Settings, *, what: str) -> T:
    """Call ``fn`` until it succeeds, sleeping with backoff through transient failures, for
    up to the horizon (then the last error is raised). For work done in this process, such
    as an embedded scan whose SQLite file another process holds locked."""
    first = time.monotonic()
    failures = 0
    while True:
        try:
            value = fn()
        except Exception as exc:
            if not is_transient(exc) or time.monotonic() - first > settings.transient_retry_s:
                raise
            OUTAGE.failed(exc, retry_s=settings.transient_retry_s)
            delay = backoff_s(failures, cap_s=settings.transient_backoff_max_s)
            failures += 1
            log.debug("%s: %s; retrying in %.1fs", what, type(exc).__name__, delay)
            time.sleep(delay)
            continue
        OUTAGE.succeeded()
        return value
