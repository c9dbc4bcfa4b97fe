"""The API's input checks and error shape, without a database or broker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import Path
from fastapi.testclient import TestClient

from api.app import create_app
from api.enqueue import s3_source as parse_s3_source
from api.errors import ApiError
from api.pagination import decode_cursor, encode_cursor
from modscan.settings import Settings


@pytest.fixture()
def client(tmp_path) -> Iterator[TestClient]:
    # No lifespan (no `with`): nothing below reaches the database.
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/unused.db"))

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    @app.get("/typed/{sha256}")
    def typed(sha256: str = Path(pattern=r"^[0-9a-f]{64}$")) -> None:
        return None

    yield TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("s3://bucket", "s3://bucket"),
        ("s3://bucket/", "s3://bucket"),
        ("s3://my.bucket-1/a/b/", "s3://my.bucket-1/a/b/"),
        ("  s3://bucket/key  ", "s3://bucket/key"),
        ("S3://bucket/Key With Spaces", "s3://bucket/Key With Spaces"),
    ],
)
def test_valid_s3_sources_are_normalized(source: str, expected: str) -> None:
    assert parse_s3_source(source) == expected


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("/data/images", "local paths"),
        ("~/images", "local paths"),
        ("file:///data", "local paths"),
        ("D:/images", "local paths"),
        ("gs://bucket/x", "s3://"),
        ("s3://", "no bucket"),
        ("s3://xn--bucket", "reserves"),
        ("s3://10.0.0.1", "IP address"),
        ("s3://bucket/" + "k" * 1025, "1024"),
    ],
)
def test_invalid_sources_say_why(source: str, words: str) -> None:
    with pytest.raises(ApiError) as raised:
        parse_s3_source(source)
    assert raised.value.status_code == 400
    assert raised.value.code == "invalid_source"
    assert words in raised.value.message


@pytest.mark.parametrize("last_id", [1, 42, 2**63 - 1])
def test_cursor_round_trip(last_id: int) -> None:
    cursor = encode_cursor(last_id)
    assert cursor.isascii() and "=" not in cursor
    assert decode_cursor(cursor) == last_id


@pytest.mark.parametrize("cursor", ["", "=", "MDEw", "LTE", "w6k", "\u00e9\u00e9\u00e9\u00e9"])
def test_malformed_cursors_are_400(cursor: str) -> None:
    with pytest.raises(ApiError) as raised:
        decode_cursor(cursor)
    assert (raised.value.status_code, raised.value.code) == (400, "invalid_cursor")


def test_unhandled_errors_are_json_500_without_internals(client: TestClient) -> None:
    response = client.get("/boom")
    assert response.status_code == 500
    assert response.json() == {
        "error": {"code": "internal_error", "message": "internal server error"}
    }


def test_validation_errors_have_the_error_shape(client: TestClient) -> None:
    response = client.get("/typed/not-a-sha")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert "sha256" in error["message"]
    assert error["details"][0]["loc"] == ["path", "sha256"]


def test_authentication_comes_before_validation(client: TestClient) -> None:
    """Without a key, a malformed request learns nothing about what the route expects."""
    response = client.get("/v1/images/not-a-sha")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_unknown_route_has_the_error_shape(client: TestClient) -> None:
    response = client.get("/v2/anything")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "Not Found"}}


def test_importing_the_app_stays_light() -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]

    code = (
        "import sys, api.app; "
        "heavy = [m for m in ('tensorflow', 'celery', 'boto3', 'workers') if m in sys.modules]; "
        "print(heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert result.stdout.strip() == "[]"
