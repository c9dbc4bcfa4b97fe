"""Fault tests (docs/reliability.md, "Fault tests a one-machine suite can run").

Everything is real: `modscan worker` subprocesses (Celery, threads pool) with a small untrained
EfficientNetB0 artifact, PostgreSQL, Redis, and moto's standalone S3/SQS server, reached over
sockets. Faults are injected from outside: SIGKILL and SIGTERM to the worker, an HTTP proxy in
front of moto that answers 503 SlowDown or deletes an object just before the worker reads it,
and pg_terminate_backend on the worker's PostgreSQL connections mid-transaction.

One worker process runs at a time. A batch is slowed down on purpose where a test needs to
catch the worker mid-batch: each task carries two images, and the engine waits
MODSCAN_MAX_WAIT_MS for a fuller batch, so a scan takes about a second per task.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
import redis
from sqlalchemy import func, select

from db.models import ItemStatus, Scan, ScanItem, Source, Verdict
from db.session import normalize_url, session_scope
from modscan.settings import Settings
from tests.integration import helpers
from tests.integration.helpers import (
    assert_scan_outcome,
    fill_bucket,
    items_by_key,
    s3_event,
    wait_until_final,
)
from tests.support.faults import FaultProxy, fault_proxy
from tests.support.images import jpeg_bytes
from tests.support.services import MigratedDatabases, RedisDatabases, WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Brokers are Redis databases of this test process's own (conftest's `redis_url`, and one
# more for the class-scoped proxied stack), so a test run elsewhere on the same Redis
# neither steals these tasks nor flushes them.
SHORT_VISIBILITY_S = 10


# -- plumbing -------------------------------------------------------------------------------


def worker_env(
    database_url: str, broker: str, s3_endpoint: str, model: Path, **extra: str
) -> dict[str, str]:
    """One task thread, two images a task: faults hit a known, small amount of work."""
    small = {
        "MODSCAN_CHUNK_SIZE": "2",
        "MODSCAN_WORKER_CONCURRENCY": "1",
        "MODSCAN_FETCH_CONCURRENCY": "4",
    }
    return helpers.worker_env(database_url, broker, s3_endpoint, model, **{**small, **extra})


# Slow, small batches: each task carries 2 images and the engine waits 1.5 s for more.
SLOW_BATCHES = {"MODSCAN_MAX_WAIT_MS": "1500"}


@contextmanager
def running_worker(env: dict[str, str], log_path: Path) -> Iterator[WorkerProcess]:
    worker = WorkerProcess(env, log_path, queues="listing,inference")
    try:
        worker.wait_ready()
        yield worker
    finally:
        worker.stop()


def s3_client(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


def item_rows(url: str, scan_id: int) -> dict[int, tuple[str, int, str | None]]:
    """item id → (status, attempts, error_reason)."""
    with session_scope(url) as session:
        rows = session.execute(
            select(ScanItem.id, ScanItem.status, ScanItem.attempts, ScanItem.error_reason).where(
                ScanItem.scan_id == scan_id
            )
        )
        return {item_id: (status, attempts, reason) for item_id, status, attempts, reason in rows}


def in_flight(rows: dict[int, tuple[str, int, str | None]]) -> set[int]:
    """Items a worker has claimed (attempt counted) but not yet finished."""
    return {i for i, (status, attempts, _) in rows.items() if status == "pending" and attempts > 0}


def final_count(rows: dict[int, tuple[str, int, str | None]]) -> int:
    return sum(1 for status, _, _ in rows.values() if status != "pending")


def wait_mid_scan(url: str, scan_id: int, *, min_final: int, timeout: float = 90.0) -> set[int]:
    """Return as soon as some items are final and the worker holds others mid-batch."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = item_rows(url, scan_id)
        if final_count(rows) >= min_final and in_flight(rows):
            return in_flight(rows)
        time.sleep(0.05)
    raise TimeoutError(f"scan {scan_id} never had {min_final} final items and a batch in flight")


def broker_holds_nothing(broker: str) -> bool:
    """No task queued and none taken by a worker (a countdown retry is taken, unacked)."""
    client = redis.Redis.from_url(broker)
    try:
        queued = sum(int(client.llen(queue)) for queue in ("listing", "inference"))
        return queued == 0 and int(client.hlen("unacked")) == 0
    finally:
        client.close()


def wait_for_completed_scan(
    url: str, scan_id: int, worker: WorkerProcess, *, timeout: float, broker: str | None = None
) -> None:
    """Wait for the scan to complete; explain what is stuck if it does not.

    With `broker`, give up early once items are pending while the broker has held no task
    for 5 s: that work is stranded, and no worker will ever pick it up again.
    """
    deadline = time.monotonic() + timeout
    idle_since: float | None = None
    why = f"did not complete in {timeout}s"
    while time.monotonic() < deadline:
        with session_scope(url) as session:
            scan = session.get(Scan, scan_id)
            assert scan is not None
            status, error = scan.status, scan.error
        if status in ("completed", "failed"):
            assert status == "completed", error
            return
        if broker is not None and broker_holds_nothing(broker):
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since > 5:
                why = "is stranded: unfinished, yet the broker holds no task for it"
                break
        else:
            idle_since = None
        time.sleep(0.25)
    stuck = {i: r for i, r in item_rows(url, scan_id).items() if r[0] == "pending"}
    errors = [line for line in worker.log().splitlines() if " ERROR " in line]
    pytest.fail(
        f"scan {scan_id} {why}; pending items (id: status, attempts, reason): {stuck}\n"
        "worker errors:\n" + "\n".join(errors[-8:])
    )


def assert_every_verdict_is_used(url: str) -> None:
    """No half-written batch: every stored verdict is the verdict of some scan item."""
    with session_scope(url) as session:
        orphans = session.scalar(
            select(func.count())
            .select_from(Verdict)
            .where(~select(ScanItem.id).where(ScanItem.verdict_id == Verdict.id).exists())
        )
    assert orphans == 0


def task_ids(worker_log: str, event: str) -> set[str]:
    """Ids of tasks that Celery's log says were `received` or `succeeded`."""
    return set(re.findall(r"Task modscan\.\w+\[([0-9a-f-]+)\] " + event, worker_log))


def wait_until_unacked_visible(broker: str, visibility_timeout: float) -> int:
    """Wait until every message the dead worker took is older than the visibility timeout.

    kombu's Redis transport keeps taken, unacked messages in the `unacked` hash, scored by
    delivery time, and restores them once they are older than the visibility timeout: a new
    worker does so as its consumer starts. Returns how many the dead worker left behind.
    """
    client = redis.Redis.from_url(broker)
    try:
        entries: list[tuple[bytes, float]] = client.zrange("unacked_index", 0, -1, withscores=True)  # type: ignore[assignment]
        scores = [score for _, score in entries]
    finally:
        client.close()
    if scores:
        time.sleep(max(0.0, max(scores) + visibility_timeout + 0.5 - time.time()))
    return len(scores)


# -- 1/2: kill -9 the worker mid-batch ----------------------------------------------------


@pytest.mark.slow(seconds=75)
def test_kill_9_mid_batch_then_another_worker_finishes_exactly_once(
    pg_url: str, redis_url: str, moto_endpoint: str, small_model: Path, tmp_path: Path
) -> None:
    from workers.dispatch import start_scan

    env = worker_env(
        pg_url,
        redis_url,
        moto_endpoint,
        small_model,
        MODSCAN_VISIBILITY_TIMEOUT_S=str(SHORT_VISIBILITY_S),
        **SLOW_BATCHES,
    )
    settings = Settings(database_url=pg_url, broker_url=redis_url)
    contents = fill_bucket(s3_client(moto_endpoint), "killed", images=12, duplicates=2)

    first = WorkerProcess(env, tmp_path / "worker-1.log", queues="listing,inference")
    try:
        first.wait_ready()
        scan_id = start_scan(settings, f"s3://killed/{contents.prefix}")
        wait_mid_scan(pg_url, scan_id, min_final=3)
        first.kill()  # SIGKILL: the process that runs the tasks, the model and the writes
    finally:
        first.stop()

    frozen = item_rows(pg_url, scan_id)
    killed_mid_batch = in_flight(frozen)
    assert killed_mid_batch, "the kill did not land while a batch was in flight"
    assert final_count(frozen) < len(frozen)
    assert wait_until_unacked_visible(redis_url, SHORT_VISIBILITY_S) >= 1

    with running_worker(env, tmp_path / "worker-2.log") as second:
        wait_for_completed_scan(pg_url, scan_id, second, timeout=90)

    assert_scan_outcome(pg_url, scan_id, contents)  # one row per object, one verdict per image
    assert_every_verdict_is_used(pg_url)
    after = item_rows(pg_url, scan_id)
    for item_id in killed_mid_batch:
        status, attempts, _ = after[item_id]
        assert status in ItemStatus.FINAL and status != ItemStatus.DEAD, (item_id, status)
        assert attempts == 2, (item_id, attempts)  # the killed delivery, then the redelivery
    assert all(attempts <= 2 for _, attempts, _ in after.values())


# -- 10/11: S3 throttling and objects that vanish, through a fault-injecting proxy --------


@dataclass
class ProxiedStack:
    settings: Settings  # the test's side: talks to moto directly
    proxy: FaultProxy  # the worker's S3 endpoint
    worker: WorkerProcess
    moto: str
    max_attempts: int

    @property
    def url(self) -> str:
        return self.settings.resolved_database_url


PROXIED_MAX_ATTEMPTS = 2
# workers.fetch.s3_client sets retries={"mode": "standard", "total_max_attempts": 5}: five
# requests per fetch, then a clear, retryable error.
BOTO_REQUESTS_PER_FETCH = 5


@pytest.fixture(scope="class")
def stack(
    moto_endpoint: str,
    small_model: Path,
    tmp_path_factory: pytest.TempPathFactory,
    pg_databases: MigratedDatabases,
    redis_databases: RedisDatabases,
) -> Iterator[ProxiedStack]:
    """One worker whose S3 endpoint is a FaultProxy in front of moto, for a test class."""
    log = tmp_path_factory.mktemp("proxied") / "worker.log"
    with (
        pg_databases.database() as url,
        redis_databases.database() as broker,
        fault_proxy(moto_endpoint) as proxy,
    ):
        env = worker_env(
            url,
            broker,
            proxy.url,
            small_model,
            MODSCAN_MAX_ATTEMPTS=str(PROXIED_MAX_ATTEMPTS),
            MODSCAN_CHUNK_SIZE="4",
            MODSCAN_WORKER_CONCURRENCY="2",
        )
        with running_worker(env, log) as worker:
            settings = Settings(database_url=url, broker_url=broker, s3_endpoint_url=moto_endpoint)
            yield ProxiedStack(settings, proxy, worker, moto_endpoint, PROXIED_MAX_ATTEMPTS)


@pytest.mark.slow(seconds=25)
@pytest.mark.xdist_group("s3-faults")  # one proxied worker (class-scoped) for both
class TestS3Faults:
    """S3 misbehaving under a running worker: throttling, objects that vanish."""

    def test_slowdown_twice_succeeds_and_always_slowdown_dead_letters(
        self, stack: ProxiedStack
    ) -> None:
        from workers.dispatch import start_scan

        s3 = s3_client(stack.moto)
        bucket, prefix = "throttled", "in/"
        s3.create_bucket(Bucket=bucket)
        keys = [f"{prefix}ok-{i}.jpg" for i in range(6)]
        flaky, down = f"{prefix}flaky.jpg", f"{prefix}down.jpg"
        for i, key in enumerate([*keys, flaky, down]):
            s3.put_object(Bucket=bucket, Key=key, Body=jpeg_bytes(100 + i))
        stack.proxy.slow_down(bucket, flaky, times=2)
        stack.proxy.slow_down(bucket, down, times=None)

        scan_id = start_scan(stack.settings, f"s3://{bucket}/{prefix}")
        wait_for_completed_scan(stack.url, scan_id, stack.worker, timeout=150)

        items = items_by_key(stack.url, scan_id)
        assert sorted(items) == sorted([*keys, flaky, down])
        # Two 503s then 200: boto3's own retries absorb it within one delivery.
        assert (items[flaky].status, items[flaky].attempts) == (ItemStatus.SCORED, 1)
        assert stack.proxy.got(bucket, flaky, 503) == 2
        assert stack.proxy.got(bucket, flaky, 200) == 1
        # Always 503: each delivery makes boto3's 5 requests, fails as a retryable error,
        # and after max_attempts deliveries the item is dead-lettered, not retried forever.
        assert items[down].status == ItemStatus.DEAD
        assert items[down].error_reason == "max_attempts"
        assert items[down].attempts == stack.max_attempts
        assert "SlowDown" in (items[down].error_detail or "")  # the dead row keeps the cause
        assert stack.proxy.got(bucket, down, 503) == BOTO_REQUESTS_PER_FETCH * stack.max_attempts
        assert stack.proxy.got(bucket, down, 200) == 0
        # Its neighbours are unharmed; the worker is alive and said why it retried.
        for key in keys:
            assert (items[key].status, items[key].attempts) == (ItemStatus.SCORED, 1), key
        assert stack.worker.process.poll() is None
        assert f"s3://{bucket}/{down}: SlowDown" in stack.worker.log()

    def test_object_deleted_after_listing_or_after_its_event_is_source_missing(
        self, stack: ProxiedStack
    ) -> None:
        from workers.dispatch import Enqueuer, start_scan
        from workers.ingest.sqs import consume_sqs

        s3 = s3_client(stack.moto)
        bucket, prefix = "vanishing", "in/"
        s3.create_bucket(Bucket=bucket)
        keys = [f"{prefix}ok-{i}.jpg" for i in range(3)]
        gone = f"{prefix}gone after listing.jpg"
        for i, key in enumerate([*keys, gone]):
            s3.put_object(Bucket=bucket, Key=key, Body=jpeg_bytes(200 + i))
        # Listed, then deleted just before the worker's GET reaches the store.
        stack.proxy.before_first_get(
            bucket, gone, lambda: s3.delete_object(Bucket=bucket, Key=gone)
        )
        scan_id = start_scan(stack.settings, f"s3://{bucket}/{prefix}")
        wait_for_completed_scan(stack.url, scan_id, stack.worker, timeout=60)
        items = items_by_key(stack.url, scan_id)
        assert (items[gone].status, items[gone].error_reason) == ("error", "source_missing")
        assert items[gone].attempts == 1
        assert stack.proxy.got(bucket, gone, 404) == 1  # one GET: no blind retries
        for key in keys:
            assert items[key].status == ItemStatus.SCORED, key

        # An S3 event arrives over SQS, but the object is deleted before the worker reads it;
        # another event names a bucket that no longer exists.
        sqs = boto3.client("sqs", endpoint_url=stack.moto, region_name="us-east-1")
        queue_url = sqs.create_queue(QueueName="vanishing-events")["QueueUrl"]
        late = f"{prefix}deleted after upload.jpg"
        data = jpeg_bytes(299)
        etag = s3.put_object(Bucket=bucket, Key=late, Body=data)["ETag"].strip('"')
        sqs.send_message(
            QueueUrl=queue_url, MessageBody=json.dumps(s3_event(bucket, late, etag, len(data)))
        )
        sqs.send_message(
            QueueUrl=queue_url,
            MessageBody=json.dumps(s3_event("bucket-gone", "a.jpg", etag, len(data))),
        )
        s3.delete_object(Bucket=bucket, Key=late)
        stats = consume_sqs(
            stack.settings, queue_url, Enqueuer(stack.settings), idle_timeout_s=1, wait_time_s=1
        )
        assert (stats.refs, stats.dispatched) == (2, 2)
        with session_scope(stack.url) as session:
            stream_id = session.query(Scan).filter_by(kind="stream").one().id
        wait_until_final(stack.url, stream_id, 2, timeout=60)
        time.sleep(3)  # longer than the first retry countdown: a retry would show
        events = items_by_key(stack.url, stream_id)
        assert set(events) == {late, "a.jpg"}
        for key, item in events.items():
            assert (item.status, item.error_reason, item.attempts) == (
                "error",
                "source_missing",
                1,
            ), key
        assert stack.proxy.gets[f"/{bucket}/{late}"] == 1
        assert stack.worker.process.poll() is None


# -- 8: pg_terminate_backend while the worker writes a batch -------------------------------


def _dbname(url: str) -> str:
    return url.rsplit("/", 1)[1]


def _libpq(url: str) -> str:
    return normalize_url(url).replace("postgresql+psycopg://", "postgresql://")


@contextmanager
def scan_items_locked(url: str) -> Iterator[Callable[[], int]]:
    """Hold an exclusive lock on scan_items, so the worker's next write blocks mid-transaction.

    Yields `terminate`: wait until some other backend waits on the lock, then
    pg_terminate_backend every other backend of the database (the worker's, and this test
    process's pooled ones, which pool_pre_ping replaces). It returns how many were waiting,
    i.e. were killed inside a transaction. The lock is released on leaving the block.
    """
    name = _dbname(url)
    with (
        psycopg.connect(_libpq(url)) as locker,
        psycopg.connect(_libpq(url), autocommit=True) as admin,
    ):
        locker.execute("LOCK TABLE scan_items IN ACCESS EXCLUSIVE MODE")
        mine = [locker.info.backend_pid, admin.info.backend_pid]

        def terminate(timeout: float = 10.0) -> int:
            deadline = time.monotonic() + timeout
            waiting = 0
            while time.monotonic() < deadline and not waiting:
                row = admin.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
                    " AND wait_event_type = 'Lock' AND NOT (pid = ANY(%s))",
                    (name, mine),
                ).fetchone()
                waiting = int(row[0]) if row else 0
                if not waiting:
                    time.sleep(0.05)
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND NOT (pid = ANY(%s))",
                (name, mine),
            )
            return waiting

        try:
            yield terminate
        finally:
            locker.rollback()


@pytest.mark.slow(seconds=50)
def test_pg_terminate_backend_during_writes_leaves_one_row_per_object(
    pg_url: str, redis_url: str, moto_endpoint: str, small_model: Path, tmp_path: Path
) -> None:
    from workers.dispatch import start_scan

    env = worker_env(
        pg_url,
        redis_url,
        moto_endpoint,
        small_model,
        MODSCAN_VISIBILITY_TIMEOUT_S=str(SHORT_VISIBILITY_S),
        **SLOW_BATCHES,
    )
    settings = Settings(database_url=pg_url, broker_url=redis_url)
    contents = fill_bucket(s3_client(moto_endpoint), "terminated", images=12, duplicates=2)
    with running_worker(env, tmp_path / "worker.log") as worker:
        scan_id = start_scan(settings, f"s3://terminated/{contents.prefix}")
        killed_in_transaction = 0
        for min_final in (3, 9):
            wait_mid_scan(pg_url, scan_id, min_final=min_final)
            with scan_items_locked(pg_url) as terminate:
                killed_in_transaction += terminate()
        assert killed_in_transaction >= 2, "no worker transaction was caught mid-write"
        assert_every_verdict_is_used(pg_url)  # the interrupted batches left nothing behind
        wait_for_completed_scan(pg_url, scan_id, worker, timeout=60, broker=redis_url)
        assert worker.process.poll() is None
    assert_scan_outcome(pg_url, scan_id, contents)
    assert_every_verdict_is_used(pg_url)


@pytest.mark.slow(seconds=40)
def test_pg_terminate_backend_during_listing_still_lists_everything(
    pg_url: str, redis_url: str, moto_endpoint: str, small_model: Path, tmp_path: Path
) -> None:
    from workers.dispatch import start_scan

    env = worker_env(pg_url, redis_url, moto_endpoint, small_model)
    settings = Settings(database_url=pg_url, broker_url=redis_url)
    contents = fill_bucket(s3_client(moto_endpoint), "relisted", images=6, duplicates=1)
    with running_worker(env, tmp_path / "worker.log") as worker:
        with scan_items_locked(pg_url) as terminate:
            scan_id = start_scan(settings, f"s3://relisted/{contents.prefix}")
            # The listing registers its first page and blocks on the lock: terminate it.
            assert terminate() >= 1, "the listing was not caught mid-transaction"
        wait_for_completed_scan(pg_url, scan_id, worker, timeout=60, broker=redis_url)
    assert_scan_outcome(pg_url, scan_id, contents)


# -- 3: SIGTERM mid-batch: warm shutdown, then a new worker finishes -----------------------


@pytest.mark.slow(seconds=65)
def test_sigterm_mid_batch_finishes_in_flight_work_and_loses_nothing(
    pg_url: str, redis_url: str, moto_endpoint: str, small_model: Path, tmp_path: Path
) -> None:
    from workers.dispatch import start_scan

    # The default visibility timeout (an hour): nothing may depend on redelivery by timeout.
    env = worker_env(
        pg_url,
        redis_url,
        moto_endpoint,
        small_model,
        MODSCAN_WORKER_CONCURRENCY="2",
        **SLOW_BATCHES,
    )
    settings = Settings(database_url=pg_url, broker_url=redis_url)
    contents = fill_bucket(s3_client(moto_endpoint), "stopped", images=14, duplicates=2)

    first = WorkerProcess(env, tmp_path / "worker-1.log", queues="listing,inference")
    try:
        first.wait_ready()
        scan_id = start_scan(settings, f"s3://stopped/{contents.prefix}")
        at_sigterm = wait_mid_scan(pg_url, scan_id, min_final=3)
        os.killpg(first.process.pid, signal.SIGTERM)
        try:
            code = first.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail("the worker did not finish a warm shutdown within 60 s")
    finally:
        first.stop()
    assert code == 0, first.log()[-3000:]
    after_stop = item_rows(pg_url, scan_id)
    assert final_count(after_stop) < len(after_stop), "the scan finished before the SIGTERM"
    # Warm shutdown: the batch in flight was finished and written, not abandoned.
    assert not in_flight(after_stop), {i: after_stop[i] for i in in_flight(after_stop)}
    for item_id in at_sigterm:
        assert after_stop[item_id][0] in ItemStatus.FINAL, (item_id, after_stop[item_id])

    with running_worker(env, tmp_path / "worker-2.log") as second:
        wait_for_completed_scan(pg_url, scan_id, second, timeout=90)

    # Tasks the first worker finished were acked, not handed to the second one again.
    finished_by_first = task_ids(first.log(), "succeeded")
    assert finished_by_first
    assert not finished_by_first & task_ids(second.log(), "received")
    assert_scan_outcome(pg_url, scan_id, contents)
    assert_every_verdict_is_used(pg_url)
    # Exactly once: no item was claimed twice.
    with session_scope(pg_url) as session:
        attempts = dict(
            session.execute(
                select(Source.key, ScanItem.attempts)
                .join(Source)
                .where(ScanItem.scan_id == scan_id, ScanItem.status != ItemStatus.SKIPPED)
            ).all()
        )
    assert set(attempts.values()) == {1}, attempts
