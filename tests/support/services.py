"""Real services for the tests: fresh PostgreSQL databases (copies of one migrated template),
Redis databases of the test process's own, moto's S3/SQS server, and `modscan worker`
processes. Nothing here is mocked; everything is reached over sockets.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import psycopg
import redis

from modscan.local_s3 import free_port, moto_server, wait_for_port

PG_ADMIN_DSN = os.environ.get("MODSCAN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379
ROOT = Path(__file__).resolve().parents[2]

__all__ = [
    "PG_ADMIN_DSN",
    "REDIS_HOST",
    "REDIS_PORT",
    "ROOT",
    "MigratedDatabases",
    "RedisDatabases",
    "WorkerProcess",
    "free_port",
    "moto_server",
    "postgres_database",
    "wait_for_port",
]


# -- PostgreSQL ------------------------------------------------------------------------------


def _forget_engines() -> None:
    """Forget the cached engines and sessionmakers (their URLs' databases are going away)."""
    from db.session import get_engine, get_sessionmaker

    for cached in (get_engine, get_sessionmaker):
        cached.cache_clear()


def _url(name: str) -> str:
    return f"{PG_ADMIN_DSN.rsplit('/', 1)[0]}/{name}"


def _create(name: str, template: str | None = None) -> str:
    source = f' TEMPLATE "{template}"' if template else ""
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"{source}')
    return name


def _drop(name: str) -> None:
    _forget_engines()
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _new_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@contextmanager
def postgres_database(prefix: str = "modscan_test") -> Iterator[str]:
    """A new, empty PostgreSQL database; dropped afterwards."""
    name = _create(_new_name(prefix))
    try:
        yield _url(name)
    finally:
        _drop(name)


class MigratedDatabases:
    """Fresh PostgreSQL databases at the head revision, for one test process.

    The migrations run once, into a template database; each database handed out is a copy
    of it (CREATE DATABASE ... TEMPLATE), made one ahead in a background thread so that a
    test seldom waits for it. A template must have no connections while it is copied: none
    are left by the migration (db.migrate.upgrade uses a NullPool engine) and nothing else
    connects to it.
    """

    def __init__(self, prefix: str = "modscan_test") -> None:
        from db.migrate import upgrade

        self.prefix = prefix
        self.template = _create(_new_name(f"{prefix}_template"))
        try:
            upgrade(_url(self.template))
        except BaseException:
            _drop(self.template)
            raise
        _forget_engines()
        self._copier = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pg-copies")
        self._next = self._copier.submit(self._copy)

    def _copy(self) -> str:
        return _create(_new_name(self.prefix), template=self.template)

    @contextmanager
    def database(self) -> Iterator[str]:
        """The URL of a fresh, migrated database, dropped at the end of the block."""
        name = self._next.result()
        self._next = self._copier.submit(self._copy)
        try:
            yield _url(name)
        finally:
            _drop(name)

    def close(self) -> None:
        try:
            _drop(self._next.result())
        finally:
            self._copier.shutdown()
            _drop(self.template)


# -- Redis -----------------------------------------------------------------------------------

# Database numbers are claimed with a lock key on db 0, so that xdist workers, and whole test
# runs started side by side on one machine, never share (or flush) one another's databases.
# Db 0 holds the lock keys (and is Celery's default), db 13 is `modscan bench`'s. The numbers
# that older checkouts of this suite hard-code (7, 8, 11, 12, 14) come last, so a run of one
# of those on the same machine is unlikely to meet this one.
REDIS_CANDIDATE_DBS = (1, 2, 3, 4, 5, 6, 9, 10, 15, 7, 8, 11, 12, 14)
REDIS_LOCK_DB = 0
REDIS_LOCK_PREFIX = "modscan-test-lock:"
REDIS_LOCK_TTL_S = 120  # renewed every TTL/4 while the run lives; a killed run frees them

# Lua, atomic: renew or delete a lock key only while it still holds this process's token.
_IF_OURS = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call({}) end return 0"
_RENEW = _IF_OURS.format("'expire', KEYS[1], ARGV[2]")
_UNLOCK = _IF_OURS.format("'del', KEYS[1]")


class RedisDatabases:
    """The Redis database numbers this test process holds, each emptied when it is claimed.

    `claim()` hands out a number no other process holds; `release()` empties it and keeps it
    for this process's next claim; `close()` empties and unlocks them all.
    """

    def __init__(self, host: str = REDIS_HOST, port: int = REDIS_PORT) -> None:
        self.host, self.port = host, port
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
        self._locks = redis.Redis(host=host, port=port, db=REDIS_LOCK_DB)
        self._held: list[int] = []
        self._spare: list[int] = []
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._renewer = threading.Thread(target=self._renew, name="redis-db-locks", daemon=True)
        self._renewer.start()

    def url(self, db: int) -> str:
        return f"redis://{self.host}:{self.port}/{db}"

    def flush(self, db: int) -> None:
        client = redis.Redis(host=self.host, port=self.port, db=db)
        try:
            client.flushdb()
        finally:
            client.close()

    def claim(self, timeout: float = 120.0) -> int:
        """A database number of this process's own, empty; waits while all are taken."""
        deadline = time.monotonic() + timeout
        while True:
            db = self._try_claim()
            if db is not None:
                self.flush(db)
                return db
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"every Redis database in {REDIS_CANDIDATE_DBS} is held by another test "
                    f"process (keys {REDIS_LOCK_PREFIX}* on db {REDIS_LOCK_DB})"
                )
            time.sleep(0.5)

    def _try_claim(self) -> int | None:
        with self._mutex:
            if self._spare:
                return self._spare.pop()
            for db in REDIS_CANDIDATE_DBS:
                if db not in self._held and self._locks.set(
                    f"{REDIS_LOCK_PREFIX}{db}", self.token, nx=True, ex=REDIS_LOCK_TTL_S
                ):
                    self._held.append(db)
                    return db
        return None

    def release(self, db: int) -> None:
        self.flush(db)
        with self._mutex:
            self._spare.append(db)

    @contextmanager
    def database(self) -> Iterator[str]:
        """The URL of a database of this process's own, empty, for the length of the block."""
        db = self.claim()
        try:
            yield self.url(db)
        finally:
            self.release(db)

    def _renew(self) -> None:
        while not self._stop.wait(REDIS_LOCK_TTL_S / 4):
            with self._mutex:
                held = list(self._held)
            for db in held:
                key = f"{REDIS_LOCK_PREFIX}{db}"
                self._locks.eval(_RENEW, 1, key, self.token, REDIS_LOCK_TTL_S)

    def close(self) -> None:
        self._stop.set()
        self._renewer.join(timeout=5)
        with self._mutex:
            held, self._held, self._spare = self._held, [], []
        for db in held:
            self.flush(db)
            self._locks.eval(_UNLOCK, 1, f"{REDIS_LOCK_PREFIX}{db}", self.token)
        self._locks.close()


class WorkerProcess:
    """A real `modscan worker` process (Celery, threads pool) with its own log file."""

    def __init__(self, env: dict[str, str], log_path: Path, queues: str) -> None:
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "modscan.cli", "worker", f"--queues={queues}"],
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "modscan worker ready" in self.log():
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log()[-4000:]}")
            time.sleep(0.2)
        raise TimeoutError(f"worker not ready after {timeout}s:\n{self.log()[-4000:]}")

    def kill(self) -> None:
        """SIGKILL, as the OOM killer would."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()
