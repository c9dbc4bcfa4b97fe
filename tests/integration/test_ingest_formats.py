"""Ingest beyond SQS: MinIO's webhook and EventBridge through the API, and MinIO's Redis
``access`` list through ``consume_redis_list``. Real PostgreSQL, Redis and moto S3; no worker.

Bodies are built the way MinIO and EventBridge build them: MinIO record keys are
``url.QueryEscape``d (``red flower.jpg`` -> ``red+flower.jpg``, ``/`` -> ``%2F``), MinIO's
top-level ``Key`` is decoded, and EventBridge keys are form-urlencoded.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import boto3
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from db.items import WorkItem
from db.models import Scan, ScanItem, Source
from db.session import session_scope
from modscan.settings import Settings
from tests.support.images import jpeg_bytes
from tests.support.services import ROOT
from workers.celery_app import INFERENCE_QUEUE
from workers.ingest.messages import InvalidMessage, parse_message

pytestmark = pytest.mark.integration

TOKEN = "ingest-token-0f3c9a"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
KEY = "minio-events"
EVENT_TIME = "2024-05-01T12:00:00.000Z"


# ---------------------------------------------------------------------------------------
# Objects and the events that announce them


@dataclass(frozen=True)
class Uploaded:
    bucket: str
    key: str
    etag: str
    size: int

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@pytest.fixture
def s3(moto_endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"ingest-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    return name


def upload(s3: Any, bucket: str, key: str, seed: int) -> Uploaded:
    body = jpeg_bytes(seed)
    etag = s3.put_object(Bucket=bucket, Key=key, Body=body)["ETag"].strip('"')
    return Uploaded(bucket, key, etag, len(body))


def minio_record(obj: Uploaded, event: str = "s3:ObjectCreated:Put") -> dict[str, Any]:
    """One record as MinIO writes it (cmd/event-notification.go)."""
    return {
        "eventVersion": "2.0",
        "eventSource": "minio:s3",
        "awsRegion": "",
        "eventTime": EVENT_TIME,
        "eventName": event,
        "userIdentity": {"principalId": "modscan"},
        "requestParameters": {"principalId": "modscan", "region": "", "sourceIPAddress": "::1"},
        "responseElements": {"x-amz-request-id": "17C0F2F1E6A4A2B1", "x-minio-deployment-id": ""},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "Config",
            "bucket": {
                "name": obj.bucket,
                "ownerIdentity": {"principalId": "modscan"},
                "arn": f"arn:aws:s3:::{obj.bucket}",
            },
            "object": {
                "key": quote_plus(obj.key, safe=""),
                "size": obj.size,
                "eTag": obj.etag,
                "contentType": "image/jpeg",
                "userMetadata": {"content-type": "image/jpeg"},
                "sequencer": "17C0F2F1E6B0C3D4",
            },
        },
        "source": {"host": "::1", "port": "", "userAgent": "MinIO (linux; amd64) minio-go/v7"},
    }


def minio_webhook_body(obj: Uploaded, event: str = "s3:ObjectCreated:Put") -> dict[str, Any]:
    """What MinIO's webhook target posts: the envelope with a decoded ``bucket/key``."""
    return {
        "EventName": event,
        "Key": f"{obj.bucket}/{obj.key}",
        "Records": [minio_record(obj, event)],
    }


def minio_access_element(obj: Uploaded, event: str = "s3:ObjectCreated:Put") -> bytes:
    """One element MinIO's Redis target (format=access) RPUSHes onto its list."""
    return json.dumps([{"Event": [minio_record(obj, event)], "EventTime": EVENT_TIME}]).encode()


def eventbridge_event(obj: Uploaded, detail_type: str = "Object Created") -> dict[str, Any]:
    """An S3 event as EventBridge delivers it to an API destination."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2024-05-01T12:00:00Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{obj.bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": obj.bucket},
            "object": {
                "key": quote_plus(obj.key, safe="/"),
                "size": obj.size,
                "etag": obj.etag,
                "sequencer": "00617F08299329D189",
            },
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": "123456789012",
            "source-ip-address": "1.2.3.4",
            "reason": "PutObject",
        },
    }


# ---------------------------------------------------------------------------------------
# The app, the broker and what ended up in the database


@pytest.fixture
def settings(pg_url: str, redis_url: str, moto_endpoint: str) -> Settings:
    return Settings(
        database_url=pg_url,
        broker_url=redis_url,
        s3_endpoint_url=moto_endpoint,
        ingest_token=TOKEN,
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def classify_tasks(broker: redis.Redis) -> list[dict[str, Any]]:
    """The kwargs of every classify task waiting in the inference queue (kombu's format)."""
    tasks = []
    for raw in broker.lrange(INFERENCE_QUEUE, 0, -1):
        message = json.loads(raw)
        assert message["headers"]["task"] == "modscan.classify"
        _args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        tasks.append(kwargs)
    return tasks


def queued_uris(broker: redis.Redis) -> list[str]:
    return sorted(item["uri"] for task in classify_tasks(broker) for item in task["items"])


def stream_sources(url: str, source_uri: str) -> dict[str, Source]:
    """key -> source of the items filed under the stream scan for ``source_uri``."""
    with session_scope(url) as session:
        scan_id = session.scalars(
            select(Scan.id).where(Scan.kind == "stream", Scan.source_uri == source_uri)
        ).one()
        rows = session.execute(
            select(ScanItem, Source).join(Source).where(ScanItem.scan_id == scan_id)
        ).all()
        assert all(item.status == "pending" for item, _ in rows)
        session.expunge_all()
        return {source.key: source for _, source in rows}


def item_count(url: str) -> int:
    with session_scope(url) as session:
        return len(session.scalars(select(ScanItem.id)).all())


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    return dict(body["error"])


# ---------------------------------------------------------------------------------------
# MinIO webhook


def test_minio_webhook_registers_the_objects_and_queues_them(
    client: TestClient, s3: Any, bucket: str, pg_url: str, broker: redis.Redis
) -> None:
    objects = [
        upload(s3, bucket, "photos/red flower.jpg", 1),
        upload(s3, bucket, "photos/2024/a+b.jpg", 2),
    ]
    for obj in objects:
        response = client.post("/v1/ingest/minio", json=minio_webhook_body(obj), headers=BEARER)
        assert response.status_code == 202, response.text
        assert response.json() == {"accepted": 1, "new": 1}

    sources = stream_sources(pg_url, "minio-webhook")
    assert sorted(sources) == sorted(obj.key for obj in objects)
    for obj in objects:
        assert (sources[obj.key].bucket, sources[obj.key].etag) == (obj.bucket, obj.etag)
        assert sources[obj.key].size == obj.size
    assert queued_uris(broker) == sorted(obj.uri for obj in objects)


def test_duplicate_webhook_delivery_adds_nothing(
    client: TestClient, s3: Any, bucket: str, pg_url: str, broker: redis.Redis
) -> None:
    obj = upload(s3, bucket, "dup/once.jpg", 3)
    body = minio_webhook_body(obj)
    first = client.post("/v1/ingest/minio", json=body, headers=BEARER)
    assert first.json() == {"accepted": 1, "new": 1}

    for _ in range(2):
        again = client.post("/v1/ingest/minio", json=body, headers=BEARER)
        assert again.status_code == 202, again.text
        assert again.json() == {"accepted": 1, "new": 0}

    assert list(stream_sources(pg_url, "minio-webhook")) == ["dup/once.jpg"]
    assert item_count(pg_url) == 1
    assert queued_uris(broker) == [obj.uri]


@pytest.mark.parametrize(
    "authorization", [f"Bearer {TOKEN}", f"bearer  {TOKEN}", TOKEN], ids=["bearer", "case", "raw"]
)
def test_webhook_accepts_the_token_with_or_without_bearer(
    client: TestClient, s3: Any, bucket: str, pg_url: str, authorization: str
) -> None:
    obj = upload(s3, bucket, "auth/ok.jpg", 4)
    response = client.post(
        "/v1/ingest/minio", json=minio_webhook_body(obj), headers={"Authorization": authorization}
    )
    assert response.status_code == 202, response.text
    assert list(stream_sources(pg_url, "minio-webhook")) == ["auth/ok.jpg"]


@pytest.mark.parametrize("path", ["/v1/ingest/minio", "/v1/ingest/eventbridge"])
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Basic {TOKEN}"},
        {"X-Api-Key": TOKEN},
    ],
    ids=["none", "empty", "bearer-only", "wrong", "longer", "basic", "other-header"],
)
def test_wrong_or_missing_token_is_a_401(
    client: TestClient,
    s3: Any,
    bucket: str,
    pg_url: str,
    broker: redis.Redis,
    path: str,
    headers: dict[str, str],
) -> None:
    obj = upload(s3, bucket, "auth/refused.jpg", 5)
    body = minio_webhook_body(obj) if path.endswith("minio") else eventbridge_event(obj)

    response = client.post(path, json=body, headers=headers)

    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    assert item_count(pg_url) == 0
    assert broker.llen(INFERENCE_QUEUE) == 0


@pytest.mark.parametrize("token", [None, "", "   "], ids=["unset", "empty", "blank"])
@pytest.mark.parametrize("authorization", [None, f"Bearer {TOKEN}"], ids=["no-header", "bearer"])
def test_ingest_is_off_without_a_configured_token(
    settings: Settings,
    s3: Any,
    bucket: str,
    pg_url: str,
    token: str | None,
    authorization: str | None,
) -> None:
    obj = upload(s3, bucket, "off/nothing.jpg", 6)
    headers = {} if authorization is None else {"Authorization": authorization}
    app = create_app(settings.model_copy(update={"ingest_token": token}))
    with TestClient(app) as test_client:
        for path, body in [
            ("/v1/ingest/minio", minio_webhook_body(obj)),
            ("/v1/ingest/eventbridge", eventbridge_event(obj)),
        ]:
            assert_error(test_client.post(path, json=body, headers=headers), 503, "ingest_disabled")
    assert item_count(pg_url) == 0


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{not json",
        b"\xff\xfe not utf-8",
        b"[]",
        b'"a string"',
        b'{"Records": "not a list"}',
        b'{"Records": [{"eventSource": "aws:sqs", "eventName": "x"}]}',
        b'{"EventName": "s3:ObjectCreated:Put", "Key": "no-slash"}',
        b'{"unrelated": true}',
    ],
)
def test_garbage_body_is_a_400_with_the_parser_message(
    client: TestClient, pg_url: str, broker: redis.Redis, body: bytes
) -> None:
    with pytest.raises(InvalidMessage) as raised:
        parse_message(body)

    response = client.post(
        "/v1/ingest/minio", content=body, headers={**BEARER, "content-type": "application/json"}
    )

    error = assert_error(response, 400, "invalid_message")
    assert error["message"] == str(raised.value)
    assert item_count(pg_url) == 0
    assert broker.llen(INFERENCE_QUEUE) == 0


def test_ingest_without_a_broker_is_a_503(
    settings: Settings, s3: Any, bucket: str, pg_url: str
) -> None:
    obj = upload(s3, bucket, "embedded/no.jpg", 7)
    with TestClient(create_app(settings.model_copy(update={"broker_url": None}))) as test_client:
        response = test_client.post(
            "/v1/ingest/minio", json=minio_webhook_body(obj), headers=BEARER
        )
    assert_error(response, 503, "broker_unavailable")
    assert response.headers["retry-after"] == "30"
    assert item_count(pg_url) == 0


def test_openapi_documents_the_ingest_endpoints(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert "IngestToken" in schema["components"]["securitySchemes"]
    for path in ("/v1/ingest/minio", "/v1/ingest/eventbridge"):
        operation = schema["paths"][path]["post"]
        assert operation["tags"] == ["ingest"]
        assert {"IngestToken": []} in operation["security"]
        assert {"202", "400", "401", "503"} <= set(operation["responses"])


# ---------------------------------------------------------------------------------------
# EventBridge


def test_eventbridge_event_through_the_endpoint(
    client: TestClient, s3: Any, bucket: str, pg_url: str, broker: redis.Redis
) -> None:
    obj = upload(s3, bucket, "eb/red flower.jpg", 8)

    created = client.post("/v1/ingest/eventbridge", json=eventbridge_event(obj), headers=BEARER)
    assert created.status_code == 202, created.text
    assert created.json() == {"accepted": 1, "new": 1}
    deleted = client.post(
        "/v1/ingest/eventbridge",
        json=eventbridge_event(obj, detail_type="Object Deleted"),
        headers=BEARER,
    )
    assert deleted.status_code == 202, deleted.text
    assert deleted.json() == {"accepted": 0, "new": 0}

    sources = stream_sources(pg_url, "eventbridge")
    assert list(sources) == ["eb/red flower.jpg"]
    assert sources["eb/red flower.jpg"].etag == obj.etag
    assert queued_uris(broker) == [obj.uri]


# ---------------------------------------------------------------------------------------
# MinIO's Redis target, access format


class Recorder:
    """A dispatch that remembers what it was handed."""

    def __init__(self) -> None:
        self.keys: list[list[str]] = []

    def __call__(self, _scan_id: int, items: Sequence[WorkItem]) -> None:
        self.keys.append([item.key for item in items])

    @property
    def all_keys(self) -> list[str]:
        return sorted(key for batch in self.keys for key in batch)


def consume(settings: Settings, redis_url: str, recorder: Recorder, **kwargs: Any) -> Any:
    from workers.ingest.redis_list import consume_redis_list

    return consume_redis_list(settings, redis_url, KEY, recorder, idle_timeout_s=0.3, **kwargs)


def test_redis_access_elements_are_ingested(
    settings: Settings, redis_url: str, broker: redis.Redis, s3: Any, bucket: str, pg_url: str
) -> None:
    flower = upload(s3, bucket, "photos/red flower.jpg", 10)
    plus = upload(s3, bucket, "photos/1+1=2.jpg", 11)
    gone = upload(s3, bucket, "photos/gone.jpg", 12)
    elements = [
        minio_access_element(flower),
        minio_access_element(plus),
        minio_access_element(flower),  # delivered twice
        minio_access_element(gone, "s3:ObjectRemoved:Delete"),
    ]
    broker.rpush(KEY, *elements)
    recorder = Recorder()

    stats = consume(settings, redis_url, recorder)

    assert (stats.messages, stats.refs, stats.dispatched, stats.invalid) == (4, 3, 2, 0)
    assert recorder.all_keys == sorted([flower.key, plus.key])
    source = f"{redis_url}#{KEY}"
    assert sorted(stream_sources(pg_url, source)) == sorted([flower.key, plus.key])
    assert [broker.llen(name) for name in (KEY, f"{KEY}:processing", f"{KEY}:invalid")] == [0, 0, 0]


def test_redis_invalid_element_is_kept_aside(
    settings: Settings,
    redis_url: str,
    broker: redis.Redis,
    s3: Any,
    bucket: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = [upload(s3, bucket, f"in/{i}.jpg", 20 + i) for i in range(2)]
    bad = [b"{not json", b'[{"Event": "not a list"}]']
    broker.rpush(KEY, minio_access_element(good[0]), *bad, minio_access_element(good[1]))
    recorder = Recorder()

    with caplog.at_level(logging.ERROR, logger="workers.ingest.redis_list"):
        stats = consume(settings, redis_url, recorder)

    assert (stats.messages, stats.dispatched, stats.invalid) == (4, 2, 2)
    assert recorder.all_keys == ["in/0.jpg", "in/1.jpg"]
    assert broker.lrange(f"{KEY}:invalid", 0, -1) == bad
    assert broker.llen(KEY) == broker.llen(f"{KEY}:processing") == 0
    assert "{not json" in caplog.text and "Event" in caplog.text


def test_redis_elements_left_in_processing_are_handled_first(
    settings: Settings, redis_url: str, broker: redis.Redis, s3: Any, bucket: str
) -> None:
    """A consumer killed between BLMOVE and LREM left two elements in flight."""
    stranded = [upload(s3, bucket, f"stranded/{i}.jpg", 30 + i) for i in range(2)]
    waiting = upload(s3, bucket, "waiting.jpg", 32)
    broker.rpush(f"{KEY}:processing", *(minio_access_element(obj) for obj in stranded))
    broker.rpush(KEY, minio_access_element(waiting))
    recorder = Recorder()

    first = consume(settings, redis_url, recorder, max_messages=2)

    assert (first.messages, first.dispatched) == (2, 2)
    assert recorder.all_keys == sorted(obj.key for obj in stranded)
    assert broker.lrange(KEY, 0, -1) == [minio_access_element(waiting)]
    assert broker.llen(f"{KEY}:processing") == 0

    second = consume(settings, redis_url, recorder)
    assert (second.messages, second.dispatched) == (1, 1)
    assert recorder.all_keys == sorted([*(obj.key for obj in stranded), waiting.key])


def test_redis_restore_keeps_the_order(redis_url: str, broker: redis.Redis) -> None:
    from workers.ingest.redis_list import RedisLists, restore_processing

    broker.rpush(f"{KEY}:processing", b"a", b"b")
    broker.rpush(KEY, b"c")

    assert restore_processing(broker, RedisLists(KEY)) == 2
    assert broker.lrange(KEY, 0, -1) == [b"a", b"b", b"c"]
    assert broker.llen(f"{KEY}:processing") == 0


def test_redis_stream_scan_source_leaves_out_the_password() -> None:
    from workers.ingest.redis_list import stream_source

    assert stream_source("redis://:hunter2@redis-host:6380/2", KEY) == (
        f"redis://redis-host:6380/2#{KEY}"
    )
    assert stream_source("rediss://user:pw@[::1]:6379/0", "k") == "rediss://[::1]:6379/0#k"


def test_cli_ingest_redis(
    pg_url: str, redis_url: str, broker: redis.Redis, s3: Any, bucket: str, moto_endpoint: str
) -> None:
    objects = [upload(s3, bucket, f"cli/{i}.jpg", 40 + i) for i in range(2)]
    broker.rpush(KEY, *(minio_access_element(obj) for obj in objects), b"garbage")
    env = {
        **os.environ,
        "MODSCAN_DATABASE_URL": pg_url,
        "MODSCAN_BROKER_URL": redis_url,
        "MODSCAN_S3_ENDPOINT_URL": moto_endpoint,
    }

    command = ["ingest", "redis", "--url", redis_url, "--key", KEY, "--idle-timeout", "0.5"]
    result = subprocess.run(
        [sys.executable, "-m", "modscan.cli", *command],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "3 messages, 2 objects, 2 new, 1 invalid"
    assert queued_uris(broker) == sorted(obj.uri for obj in objects)
    assert broker.lrange(f"{KEY}:invalid", 0, -1) == [b"garbage"]
