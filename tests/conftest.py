"""Fixtures: real PostgreSQL, Redis and moto S3/SQS, and a small untrained model artifact.

Tests marked `integration` need PostgreSQL at 127.0.0.1:5432 and Redis at 127.0.0.1:6379
(`make test` starts them when they are down).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.services import REDIS_HOST, REDIS_PORT, moto_server, postgres_database

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for one test."""
    from db.migrate import upgrade

    with postgres_database() as url:
        upgrade(url)
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    from db.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'modscan.db'}"
    upgrade(url)
    return url


@pytest.fixture(params=["postgresql", "sqlite"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test using this runs on PostgreSQL and on SQLite."""
    from db.migrate import upgrade

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'modscan.db'}"
        upgrade(url)
        yield url
        return
    with postgres_database() as url:
        upgrade(url)
        yield url


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis database number of its own, emptied before and after."""
    db = 11
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db)
    client.flushdb()
    yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"
    client.flushdb()


@pytest.fixture(scope="session")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freshly initialised EfficientNetB0 artifact: the real loader and runner, built
    small so the suite stays quick. The B6 default is exercised by the demo and bench."""
    from workers.classifier.runner import create_untrained_artifact

    folder = tmp_path_factory.mktemp("model") / "untrained-b0"
    create_untrained_artifact(folder, backbone="EfficientNetB0", input_size=32)
    return folder
