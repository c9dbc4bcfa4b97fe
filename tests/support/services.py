"""Real services for the tests: a fresh PostgreSQL database, Redis, moto's S3/SQS server,
and `modscan worker` processes. Nothing here is mocked; everything is reached over sockets.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

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
    "WorkerProcess",
    "free_port",
    "moto_server",
    "postgres_database",
    "wait_for_port",
]


@contextmanager
def postgres_database(prefix: str = "modscan_test") -> Iterator[str]:
    """A new, empty PostgreSQL database; dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        from db.session import get_engine, get_sessionmaker

        for cached in (get_engine, get_sessionmaker):
            cached.cache_clear()
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
