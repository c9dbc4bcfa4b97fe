"""Fixtures: real PostgreSQL, Redis and moto S3/SQS, and a small untrained model artifact.

Tests marked `integration` need PostgreSQL at 127.0.0.1:5432 and Redis at 127.0.0.1:6379
(`make test` starts them when they are down).

Every test process (each pytest-xdist worker, and each of two runs side by side) has
databases of its own: PostgreSQL databases copied from a template migrated once per process,
and Redis database numbers claimed with a lock key (tests.support.services.RedisDatabases).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.services import MigratedDatabases, RedisDatabases, moto_server

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


# -- order ----------------------------------------------------------------------------------

DEFAULT_SLOW_SECONDS = 10.0


def _cost(item: pytest.Item) -> float:
    """A rough cost in seconds: `slow(seconds=N)`, a bare `slow`, or next to nothing."""
    marker = item.get_closest_marker("slow")
    if marker is None:
        return 0.0
    return float(marker.kwargs.get("seconds", DEFAULT_SLOW_SECONDS))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest tests first, the rest in their usual order.

    Under pytest-xdist (`make test`) workers take tests in this order, so the few long tests
    start at once, side by side, and the many short ones fill in around them: the run ends
    when the longest one does, not a long test started last. Every worker sorts alike.
    """
    items.sort(key=lambda item: -_cost(item))  # stable: ties keep the collection order


# -- databases ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[MigratedDatabases]:
    """Fresh PostgreSQL databases, copies of a template migrated once for this process."""
    databases = MigratedDatabases()
    try:
        yield databases
    finally:
        databases.close()


@pytest.fixture
def pg_url(pg_databases: MigratedDatabases) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for one test."""
    with pg_databases.database() as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once for this test process."""
    from db.migrate import upgrade

    path = tmp_path_factory.mktemp("sqlite-template") / "modscan.db"
    upgrade(f"sqlite:///{path}")  # a NullPool engine: the file is closed, no -wal beside it
    return path


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    """A fresh, migrated SQLite database for one test (a copy of the template file)."""
    path = tmp_path / "modscan.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(params=["postgresql", "sqlite"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs on PostgreSQL and on SQLite."""
    return str(request.getfixturevalue("pg_url" if request.param == "postgresql" else "sqlite_url"))


# -- Redis ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_databases() -> Iterator[RedisDatabases]:
    """The Redis database numbers this test process holds; unlocked at the end."""
    databases = RedisDatabases()
    try:
        yield databases
    finally:
        databases.close()


@pytest.fixture(scope="session")
def redis_session_url(redis_databases: RedisDatabases) -> Iterator[str]:
    """This process's own Redis database, for module-scoped fixtures that need a broker URL.

    Tests take `redis_url`, the same database emptied before and after each test.
    """
    with redis_databases.database() as url:
        yield url


@pytest.fixture
def redis_url(redis_databases: RedisDatabases, redis_session_url: str) -> Iterator[str]:
    """A Redis database of this test process's own, emptied before and after the test."""
    db = int(redis_session_url.rsplit("/", 1)[1])
    redis_databases.flush(db)
    yield redis_session_url
    redis_databases.flush(db)


@pytest.fixture
def broker(redis_url: str) -> Iterator[redis.Redis]:
    """A client of `redis_url`'s database, to look at what was queued there."""
    connection = redis.Redis.from_url(redis_url)
    try:
        yield connection
    finally:
        connection.close()


# -- model ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freshly initialised EfficientNetB0 artifact: the real loader and runner, built
    small so the suite stays quick. The B6 default is exercised by the demo and bench."""
    from workers.classifier.runner import create_untrained_artifact

    folder = tmp_path_factory.mktemp("model") / "untrained-b0"
    create_untrained_artifact(folder, backbone="EfficientNetB0", input_size=32)
    return folder
