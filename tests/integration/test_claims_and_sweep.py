"""Delivery claims, transient errors, the sweep's lease and the sweep itself, on the real
databases: what lets an outage end with every image scored and no operator step."""

from __future__ import annotations

import sqlite3
import threading
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
import redis
from sqlalchemy import create_engine, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError

from db.errors import is_transient_db_error
from db.items import SourceRecord, WorkItem, claim_items, pending_items, register_sources
from db.leases import acquire_lease
from db.models import ItemStatus, Lease, ScanItem, utcnow
from db.scans import create_scan
from db.session import get_engine, normalize_url, session_scope
from modscan.settings import Settings
from tests.support.services import PG_ADMIN_DSN

pytestmark = pytest.mark.integration


def make_items(url: str, n: int, bucket: str = "claims") -> list[WorkItem]:
    with session_scope(url) as session:
        scan_id = create_scan(session, source_uri=f"s3://{bucket}/", kind="prefix").id
        records = [SourceRecord("s3", bucket, f"k/{i}.jpg", version=str(i)) for i in range(n)]
        return register_sources(session, scan_id, records)


def rows(url: str) -> dict[int, tuple[str, int, str | None]]:
    with session_scope(url) as session:
        found = session.execute(
            select(ScanItem.id, ScanItem.status, ScanItem.attempts, ScanItem.claim_token)
        )
        return {item_id: (status, attempts, token) for item_id, status, attempts, token in found}


def claim(url: str, items: list[WorkItem], token: str, **kw: object) -> list[int]:
    with session_scope(url) as session:
        got = claim_items(session, items, token=token, lease_s=60, max_attempts=3, **kw)  # type: ignore[arg-type]
    return [item.item_id for item in got]


def expire_leases(url: str) -> None:
    with session_scope(url) as session:
        session.execute(update(ScanItem).values(claimed_until=utcnow() - timedelta(seconds=1)))


def test_concurrent_deliveries_count_once_and_split_the_items(pg_url: str) -> None:
    """Eight deliveries of the same 40 items at once (kombu restoring unacked tasks after
    a lost connection): each item is counted once and held by exactly one of them."""
    items = make_items(pg_url, 40)
    got: dict[str, list[int]] = {}
    start = threading.Barrier(8)

    def deliver(token: str) -> None:
        start.wait()
        got[token] = claim(pg_url, items, token)

    threads = [threading.Thread(target=deliver, args=(f"t{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    claimed = [item_id for ids in got.values() for item_id in ids]
    assert sorted(claimed) == sorted(item.item_id for item in items)  # each once
    assert {attempts for _, attempts, _ in rows(pg_url).values()} == {1}


def test_a_retry_takes_over_uncounted_and_a_delivery_after_the_lease_counts(
    db_url: str,
) -> None:
    items = make_items(db_url, 3)
    ids = [item.item_id for item in items]
    assert claim(db_url, items, "A") == ids
    # The retry after a transient error names run A: same attempt, new holder.
    assert claim(db_url, items, "B", previous="A") == ids
    assert {v[1:] for v in rows(db_url).values()} == {(1, "B")}
    # A duplicate delivery while B's lease runs gets nothing and counts nothing.
    assert claim(db_url, items, "C") == []
    assert claim(db_url, items, "D", previous="A") == []  # A no longer holds them
    assert {v[1:] for v in rows(db_url).values()} == {(1, "B")}
    # B was killed: once its lease runs out the redelivery claims them, and that counts.
    expire_leases(db_url)
    assert claim(db_url, items, "E", previous="B") == ids
    assert {v[1:] for v in rows(db_url).values()} == {(2, "E")}


def test_deliveries_past_max_attempts_dead_letter_atomically(db_url: str) -> None:
    items = make_items(db_url, 2)
    for token in ("A", "B", "C"):
        assert len(claim(db_url, items, token)) == 2
        expire_leases(db_url)
    assert claim(db_url, items, "D") == []
    with session_scope(db_url) as session:
        found = session.execute(
            select(ScanItem.status, ScanItem.error_reason, ScanItem.attempts)
        ).all()
    assert {tuple(row) for row in found} == {(ItemStatus.DEAD, "max_attempts", 3)}


def test_the_sweep_lease_has_one_holder_until_it_runs_out(db_url: str) -> None:
    with session_scope(db_url) as session:
        assert acquire_lease(session, "sweep", holder="a", ttl_s=60)
    with session_scope(db_url) as session:
        assert not acquire_lease(session, "sweep", holder="b", ttl_s=60)
    with session_scope(db_url) as session:
        assert acquire_lease(session, "sweep", holder="a", ttl_s=60)  # renewal
        session.execute(update(Lease).values(expires_at=utcnow() - timedelta(seconds=1)))
    with session_scope(db_url) as session:
        assert acquire_lease(session, "sweep", holder="b", ttl_s=60)
    with session_scope(db_url) as session:
        assert not acquire_lease(session, "sweep", holder="a", ttl_s=60)


def test_sweep_reenqueues_lost_items_once_and_leaves_held_ones(pg_url: str, redis_url: str) -> None:
    from workers.sweep import sweep_once

    items = make_items(pg_url, 5)
    held, lost = items[:2], items[2:]
    claim(pg_url, held, "alive")  # a live delivery is working on these
    with session_scope(pg_url) as session:
        session.execute(update(ScanItem).values(updated_at=utcnow() - timedelta(hours=1)))
    settings = Settings(
        database_url=pg_url, broker_url=redis_url, sweep_after_s=60, sweep_interval_s=30
    )
    broker = redis.Redis.from_url(redis_url)
    stats = sweep_once(settings, holder="me")
    assert stats is not None and stats.items == len(lost)
    assert broker.llen("inference") == 1  # one classify task (chunk_size 64) for the three
    assert sweep_once(settings, holder="other") is None  # "me" holds the lease
    again = sweep_once(settings, holder="me")
    assert again is not None and again.items == 0  # touched: not sent twice in a row
    assert broker.llen("inference") == 1
    assert [i.item_id for i in pending_items(get_session(pg_url))] == [i.item_id for i in items]


def get_session(url: str):
    from db.session import get_sessionmaker

    return get_sessionmaker(url)()


# -- what counts as transient ---------------------------------------------------------------


def test_database_refusing_connections_is_transient_and_integrity_errors_are_not(
    pg_url: str,
) -> None:
    name = pg_url.rsplit("/", 1)[1]
    engine = create_engine(normalize_url(pg_url), pool_pre_ping=False)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id int PRIMARY KEY)"))
        conn.execute(text("INSERT INTO t VALUES (1)"))
    with pytest.raises(IntegrityError) as integrity, engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
    assert not is_transient_db_error(integrity.value)

    held = engine.connect()
    held.execute(text("SELECT 1"))
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        try:
            with pytest.raises(OperationalError) as cut:
                held.execute(text("SELECT 1"))  # its backend was terminated
            assert is_transient_db_error(cut.value)
            with pytest.raises(OperationalError) as refused:
                engine.dispose()
                engine.connect()  # connections are not allowed
            assert is_transient_db_error(refused.value)
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            held.close()
            engine.dispose()


def test_a_sqlite_file_locked_by_another_process_is_transient(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    locker = sqlite3.connect(path)
    locker.execute("CREATE TABLE t (id int)")
    locker.commit()
    locker.execute("BEGIN EXCLUSIVE")
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0.1})
    try:
        with pytest.raises(OperationalError) as locked, engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
        assert is_transient_db_error(locked.value)
    finally:
        locker.rollback()
        locker.close()
        engine.dispose()
        get_engine.cache_clear()


def test_embedded_work_waits_out_a_sqlite_lock_held_by_another_process(tmp_path: Path) -> None:
    """call_retrying (the embedded scan's listing and scan creation) backs off while another
    process holds the file's write lock, then succeeds; without the lock it never waits."""
    import subprocess
    import sys
    import time

    from workers.transient import call_retrying

    path = tmp_path / "embedded.db"
    sqlite3.connect(path).execute("CREATE TABLE t (id int)").connection.commit()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            f"c = sqlite3.connect({str(path)!r}); c.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True); time.sleep(3); c.rollback()",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0.2})
    calls = 0

    def write() -> int:
        nonlocal calls
        calls += 1
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
        return calls

    settings = Settings(transient_retry_s=60, transient_backoff_max_s=1)
    started = time.monotonic()
    try:
        assert call_retrying(write, settings, what="a locked write") > 1
        assert time.monotonic() - started >= 2  # it waited for the other process
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE u (id int PRIMARY KEY)"))
            conn.execute(text("INSERT INTO u VALUES (1)"))
        tries = 0

        def duplicate() -> None:
            nonlocal tries
            tries += 1
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO u VALUES (1)"))

        with pytest.raises(IntegrityError):  # about the row, not the database: no retry
            call_retrying(duplicate, settings, what="a duplicate row")
        assert tries == 1
    finally:
        holder.wait(timeout=10)
        engine.dispose()
