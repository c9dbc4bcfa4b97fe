"""Outages of the database and the broker mid-scan: the scan finishes by itself.

RELIABILITY.md says recovery needs no operator: no `modscan requeue`, no restart. Each test
runs a real `modscan worker`, cuts one service for tens of seconds without stopping the
shared server, and then only waits.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import func, select

from db.models import ScanItem, Verdict
from db.session import session_scope
from modscan.settings import Settings
from tests.integration.helpers import assert_scan_outcome, fill_bucket
from tests.integration.test_faults import (
    SHORT_VISIBILITY_S,
    SLOW_BATCHES,
    assert_every_verdict_is_used,
    running_worker,
    s3_client,
    wait_for_completed_scan,
    wait_mid_scan,
    worker_env,
)
from tests.support.faults import fault_proxy
from tests.support.images import jpeg_bytes
from tests.support.services import PG_ADMIN_DSN, REDIS_HOST, REDIS_PORT
from tests.support.tcp_proxy import tcp_proxy

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OUTAGE_S = 35
# Short backoff caps and a quick sweep, so recovery is visible within a test's patience.
HEALING = {
    "MODSCAN_TRANSIENT_BACKOFF_MAX_S": "4",
    "MODSCAN_SWEEP_INTERVAL_S": "3",
    "MODSCAN_SWEEP_AFTER_S": "20",
}


@contextmanager
def database_unreachable(url: str) -> Iterator[None]:
    """No connection to this test's database is allowed, and every open one is cut."""
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        try:
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


@pytest.mark.slow(seconds=100)
def test_database_outage_mid_scan_heals_without_an_operator(
    pg_url: str, redis_url: str, moto_endpoint: str, small_model: Path, tmp_path: Path
) -> None:
    from workers.dispatch import start_scan

    env = worker_env(pg_url, redis_url, moto_endpoint, small_model, **SLOW_BATCHES, **HEALING)
    settings = Settings(database_url=pg_url, broker_url=redis_url)
    contents = fill_bucket(s3_client(moto_endpoint), "outage", images=30, duplicates=3)
    with running_worker(env, tmp_path / "worker.log") as worker:
        scan_id = start_scan(settings, f"s3://outage/{contents.prefix}")
        wait_mid_scan(pg_url, scan_id, min_final=4)
        with database_unreachable(pg_url):
            time.sleep(OUTAGE_S)
        back = time.monotonic()
        wait_for_completed_scan(pg_url, scan_id, worker, timeout=120)
        healed_in = time.monotonic() - back
        assert worker.process.poll() is None
        log = worker.log()
    assert_scan_outcome(pg_url, scan_id, contents)  # one row each, one verdict per image
    assert_every_verdict_is_used(pg_url)
    assert "raised unexpected: OperationalError" not in log
    assert "outage lasted" in log, log[-3000:]
    # One line when the outage began, not one per item or task.
    assert log.count("unavailable (") <= 3, log[-3000:]
    print(f"scan completed {healed_in:.1f}s after the database came back")


@pytest.mark.slow(seconds=130)
def test_broker_cut_mid_scan_heals_and_scores_each_image_once(
    pg_url: str, redis_url: str, moto_endpoint: str, small_model: Path, tmp_path: Path
) -> None:
    """Redis unreachable from the worker for 30 s: kombu restores the tasks it held while
    they still run; claims keep the duplicates from scoring anything twice."""
    from workers.dispatch import start_scan

    host, port, db = REDIS_HOST, REDIS_PORT, redis_url.rsplit("/", 1)[1]
    contents = fill_bucket(s3_client(moto_endpoint), "cut", images=30, duplicates=3)
    settings = Settings(database_url=pg_url, broker_url=redis_url)
    with tcp_proxy(host, port) as proxy:
        proxied = f"redis://127.0.0.1:{proxy.port}/{db}"
        env = worker_env(pg_url, proxied, moto_endpoint, small_model, **SLOW_BATCHES, **HEALING)
        with running_worker(env, tmp_path / "worker.log") as worker:
            scan_id = start_scan(settings, f"s3://cut/{contents.prefix}")
            wait_mid_scan(pg_url, scan_id, min_final=4)
            proxy.cut()
            time.sleep(30)
            proxy.restore()
            wait_for_completed_scan(pg_url, scan_id, worker, timeout=150)
            assert worker.process.poll() is None
            assert proxy.refused > 0, "the worker never tried to reconnect"
    assert_scan_outcome(pg_url, scan_id, contents)
    assert_every_verdict_is_used(pg_url)
    with session_scope(pg_url) as session:
        most = session.scalar(select(func.max(ScanItem.attempts)))
    assert most is not None and most <= 2  # the cut may cost a delivery, never two


@pytest.mark.slow(seconds=60)
def test_a_batch_that_outlives_the_visibility_timeout_runs_twice_and_writes_once(
    pg_url: str, redis_url: str, moto_endpoint: str, small_model: Path, tmp_path: Path
) -> None:
    """RELIABILITY #4. One object's GET hangs past the visibility timeout: Redis hands its
    task to another thread, which scores it; the first finishes later and finds it done."""
    from workers.dispatch import start_scan

    s3 = s3_client(moto_endpoint)
    s3.create_bucket(Bucket="slowget")
    for i in range(2):
        s3.put_object(Bucket="slowget", Key=f"s/{i}.jpg", Body=jpeg_bytes(900 + i))
    settings = Settings(database_url=pg_url, broker_url=redis_url)
    with fault_proxy(moto_endpoint) as proxy:
        proxy.before_first_get("slowget", "s/0.jpg", lambda: time.sleep(SHORT_VISIBILITY_S + 6))
        env = worker_env(
            pg_url,
            redis_url,
            proxy.url,
            small_model,
            MODSCAN_VISIBILITY_TIMEOUT_S=str(SHORT_VISIBILITY_S),
            MODSCAN_WORKER_CONCURRENCY="2",
            MODSCAN_CHUNK_SIZE="1",  # a task per image: only the slow one is redelivered
        )
        with running_worker(env, tmp_path / "worker.log") as worker:
            scan_id = start_scan(settings, "s3://slowget/s/")
            wait_for_completed_scan(pg_url, scan_id, worker, timeout=90)
            # The first delivery is still inside its GET: wait for it to write, and say so.
            deadline = time.monotonic() + 30
            while "work done twice" not in worker.log() and time.monotonic() < deadline:
                time.sleep(0.5)
            log = worker.log()
    assert "work done twice" in log, log[-3000:]
    assert proxy.gets["/slowget/s/0.jpg"] >= 2  # fetched by both deliveries
    with session_scope(pg_url) as session:
        verdicts = session.scalar(select(func.count()).select_from(Verdict))
        items = session.execute(select(ScanItem.status, ScanItem.attempts)).all()
    assert verdicts == 2  # one per image, though one was scored twice
    assert sorted(tuple(row) for row in items) == [("scored", 1), ("scored", 2)]
