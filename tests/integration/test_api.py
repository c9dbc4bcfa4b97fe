"""The HTTP API against a real PostgreSQL database and a real Redis broker."""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from db.keys import issue_key
from db.migrate import DatabaseNotMigrated
from db.models import Image, ItemStatus, Scan, ScanItem, ScanStatus, Source, Verdict
from db.session import session_scope
from modscan.settings import Settings
from tests.support.services import MigratedDatabases, postgres_database

pytestmark = pytest.mark.integration

DEAD_BROKER_URL = "redis://127.0.0.1:1/0"
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


# ---------------------------------------------------------------------------------------
# Databases


@pytest.fixture(scope="module")
def database_url(pg_databases: MigratedDatabases) -> Iterator[str]:
    with pg_databases.database() as url:
        yield url


@pytest.fixture(scope="module")
def settings(database_url: str, redis_session_url: str) -> Settings:
    return Settings(database_url=database_url, broker_url=redis_session_url)


@pytest.fixture(scope="module")
def client(settings: Settings, database_url: str) -> Iterator[TestClient]:
    """A client holding an admin key: these tests are about the endpoints' behaviour; who
    may call them is tested in test_access_control.py."""
    with session_scope(database_url) as session:
        token = issue_key(session, name="api tests", role="admin", actor="test").token
    with TestClient(create_app(settings)) as test_client:
        test_client.headers["Authorization"] = f"Bearer {token}"
        yield test_client


# ---------------------------------------------------------------------------------------
# Factories: rows inserted through SQLAlchemy, committed before the request.


class Rows:
    def __init__(self, url: str) -> None:
        self.url = url

    def scan(self, **values: Any) -> int:
        values = {
            "source_uri": "s3://bucket/prefix",
            "kind": "prefix",
            "status": ScanStatus.RUNNING,
            **values,
        }
        with session_scope(self.url) as session:
            scan = Scan(**values)
            session.add(scan)
            session.flush()
            return scan.id

    def source(self, key: str | None = None, bucket: str = "bucket") -> int:
        key = key or f"images/{uuid.uuid4().hex}.jpg"
        with session_scope(self.url) as session:
            source = Source(
                scheme="s3", bucket=bucket, key=key, version=uuid.uuid4().hex, etag="etag"
            )
            session.add(source)
            session.flush()
            return source.id

    def image(self, sha256: str | None = None) -> str:
        sha256 = sha256 or hashlib.sha256(uuid.uuid4().bytes).hexdigest()
        with session_scope(self.url) as session:
            session.add(
                Image(
                    sha256=sha256,
                    size_bytes=1234,
                    width=32,
                    height=24,
                    format="JPEG",
                    created_at=T0,
                )
            )
        return sha256

    def verdict(
        self,
        *,
        model_name: str,
        model_version: str = "v1",
        label: str = "ai",
        created_at: datetime = T0,
        image: str | None = None,
        ai_score: float | None = None,
    ) -> int:
        image = image or self.image()
        score = ai_score if ai_score is not None else (0.9 if label == "ai" else 0.1)
        with session_scope(self.url) as session:
            verdict = Verdict(
                image_sha256=image,
                model_name=model_name,
                model_version=model_version,
                ai_score=score,
                label=label,
                threshold=0.5,
                created_at=created_at,
            )
            session.add(verdict)
            session.flush()
            return verdict.id

    def item(
        self,
        scan_id: int,
        *,
        status: str = ItemStatus.PENDING,
        source_id: int | None = None,
        verdict_id: int | None = None,
        image: str | None = None,
        error_reason: str | None = None,
        created_at: datetime | None = None,
    ) -> int:
        source_id = source_id or self.source()
        with session_scope(self.url) as session:
            if verdict_id is not None and image is None:
                image = session.get_one(Verdict, verdict_id).image_sha256
            item = ScanItem(
                scan_id=scan_id,
                source_id=source_id,
                status=status,
                verdict_id=verdict_id,
                image_sha256=image,
                error_reason=error_reason,
                created_at=created_at or datetime.now(UTC),
            )
            session.add(item)
            session.flush()
            return item.id


@pytest.fixture(scope="module")
def rows(database_url: str) -> Rows:
    return Rows(database_url)


def model_name() -> str:
    """A model name of its own, so each test sees only the verdicts it made."""
    return f"test-model-{uuid.uuid4().hex[:8]}"


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code, body
    return dict(error)


def cursor_for(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


# ---------------------------------------------------------------------------------------
# Scans


def test_scan_detail_counts_and_progress(client: TestClient, rows: Rows) -> None:
    name = model_name()
    scan_id = rows.scan(source_uri="s3://photos/uploads/", listed=4, listing_done=True)
    rows.item(scan_id, status=ItemStatus.SCORED, verdict_id=rows.verdict(model_name=name))
    rows.item(
        scan_id,
        status=ItemStatus.CACHED,
        verdict_id=rows.verdict(model_name=name, label="real"),
    )
    rows.item(scan_id, status=ItemStatus.ERROR, error_reason="corrupt")
    rows.item(scan_id, status=ItemStatus.PENDING)

    response = client.get(f"/v1/scans/{scan_id}")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == scan_id
    assert body["source"] == "s3://photos/uploads/"
    assert body["kind"] == "prefix"
    assert body["status"] == ScanStatus.RUNNING
    assert body["listing_done"] is True
    assert body["listed"] == 4
    assert body["counts"] == {
        "by_status": {"scored": 1, "cached": 1, "error": 1, "pending": 1},
        "errors_by_reason": {"corrupt": 1},
        "by_label": {"ai": 1, "real": 1},
    }
    assert body["progress"] == pytest.approx(0.75)
    assert datetime.fromisoformat(body["created_at"]).tzinfo is not None
    assert body["updated_at"] is not None
    assert body["finished_at"] is None
    assert body["error"] is None


def test_scan_progress_is_null_until_listing_is_done(client: TestClient, rows: Rows) -> None:
    listing = rows.scan(status=ScanStatus.LISTING, listed=2, listing_done=False)
    rows.item(listing, status=ItemStatus.SKIPPED)
    empty = rows.scan(status=ScanStatus.COMPLETED, listed=0, listing_done=True)
    failed = rows.scan(status=ScanStatus.FAILED, listed=0, error="AccessDenied", finished_at=T0)

    listing_body = client.get(f"/v1/scans/{listing}").json()
    empty_body = client.get(f"/v1/scans/{empty}").json()
    failed_body = client.get(f"/v1/scans/{failed}").json()

    assert listing_body["progress"] is None
    assert listing_body["counts"]["by_status"] == {"skipped": 1}
    assert empty_body["progress"] is None
    assert empty_body["counts"] == {"by_status": {}, "errors_by_reason": {}, "by_label": {}}
    assert failed_body["status"] == "failed"
    assert failed_body["error"] == "AccessDenied"
    assert datetime.fromisoformat(failed_body["finished_at"]) == T0


def test_missing_scan_is_a_json_404(client: TestClient) -> None:
    error = assert_error(client.get("/v1/scans/987654321"), 404, "not_found")
    assert "987654321" in error["message"]


@pytest.mark.parametrize("bad_id", ["abc", "0", "-1", "99999999999999999999999"])
def test_malformed_scan_id_is_a_json_422(client: TestClient, bad_id: str) -> None:
    assert_error(client.get(f"/v1/scans/{bad_id}"), 422, "validation_error")


# ---------------------------------------------------------------------------------------
# Verdicts


def _ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def test_verdict_items_have_the_documented_fields(client: TestClient, rows: Rows) -> None:
    name = model_name()
    image = rows.image()
    verdict_id = rows.verdict(model_name=name, image=image, ai_score=0.73)

    body = client.get("/v1/verdicts", params={"model_name": name}).json()

    assert body["next_cursor"] is None
    assert body["items"] == [
        {
            "id": verdict_id,
            "image_sha256": image,
            "ai_score": 0.73,
            "label": "ai",
            "threshold": 0.5,
            "model_name": name,
            "model_version": "v1",
            "created_at": body["items"][0]["created_at"],
            "action": None,
            "policy_version": None,
            "check_score": None,
        }
    ]
    assert datetime.fromisoformat(body["items"][0]["created_at"]) == T0


def test_verdicts_filter_by_label_and_model_version(client: TestClient, rows: Rows) -> None:
    name = model_name()
    ai_v1 = rows.verdict(model_name=name, label="ai", model_version="v1")
    real_v1 = rows.verdict(model_name=name, label="real", model_version="v1")
    ai_v2 = rows.verdict(model_name=name, label="ai", model_version="v2")
    rows.verdict(model_name=model_name(), label="ai")  # another model: never listed here

    assert _ids(client.get("/v1/verdicts", params={"model_name": name})) == [
        ai_v1,
        real_v1,
        ai_v2,
    ]
    assert _ids(client.get("/v1/verdicts", params={"model_name": name, "label": "ai"})) == [
        ai_v1,
        ai_v2,
    ]
    assert _ids(client.get("/v1/verdicts", params={"model_name": name, "label": "real"})) == [
        real_v1
    ]
    assert _ids(client.get("/v1/verdicts", params={"model_name": name, "model_version": "v2"})) == [
        ai_v2
    ]
    assert _ids(
        client.get(
            "/v1/verdicts",
            params={"model_name": name, "model_version": "v1", "label": "ai"},
        )
    ) == [ai_v1]


def test_verdicts_filter_by_scan_lists_each_verdict_once(client: TestClient, rows: Rows) -> None:
    name = model_name()
    scan_id = rows.scan()
    other_scan = rows.scan()
    shared = rows.verdict(model_name=name)
    own = rows.verdict(model_name=name, label="real")
    elsewhere = rows.verdict(model_name=name)
    # The same bytes under two keys: two items, one verdict.
    rows.item(scan_id, status=ItemStatus.SCORED, verdict_id=shared)
    rows.item(scan_id, status=ItemStatus.DUPLICATE, verdict_id=shared)
    rows.item(scan_id, status=ItemStatus.CACHED, verdict_id=own)
    rows.item(scan_id, status=ItemStatus.ERROR, error_reason="corrupt")
    rows.item(other_scan, status=ItemStatus.SCORED, verdict_id=elsewhere)
    rows.item(other_scan, status=ItemStatus.CACHED, verdict_id=shared)

    assert _ids(client.get("/v1/verdicts", params={"scan_id": scan_id})) == [shared, own]
    assert _ids(client.get("/v1/verdicts", params={"scan_id": other_scan})) == [
        shared,
        elsewhere,
    ]
    assert _ids(client.get("/v1/verdicts", params={"scan_id": scan_id, "label": "real"})) == [own]
    assert _ids(client.get("/v1/verdicts", params={"scan_id": 987654321})) == []


def test_verdicts_filter_by_time_range(client: TestClient, rows: Rows) -> None:
    name = model_name()
    ids = [
        rows.verdict(model_name=name, created_at=T0 + timedelta(hours=hour)) for hour in range(4)
    ]
    at = [(T0 + timedelta(hours=hour)).isoformat() for hour in range(4)]

    def listed(**params: str) -> list[int]:
        return _ids(client.get("/v1/verdicts", params={"model_name": name, **params}))

    assert listed(since=at[1]) == ids[1:]  # since is inclusive
    assert listed(until=at[2]) == ids[:2]  # until is exclusive
    assert listed(since=at[1], until=at[3]) == ids[1:3]
    # An offset is honoured: 14:00+02:00 is 12:00Z, the first verdict.
    assert listed(until="2024-03-01T14:00:01+02:00") == ids[:1]
    # No offset means UTC.
    assert listed(since="2024-03-01T14:00:00") == ids[2:]
    assert listed(since=at[3], until=at[1]) == []


def test_pagination_walks_every_row_exactly_once(client: TestClient, rows: Rows) -> None:
    name = model_name()
    expected = [rows.verdict(model_name=name, label=("ai", "real")[i % 2]) for i in range(7)]

    seen: list[int] = []
    pages = 0
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"model_name": name, "limit": 3}
        if cursor is not None:
            params["cursor"] = cursor
        response = client.get("/v1/verdicts", params=params)
        page_ids = _ids(response)
        assert len(page_ids) <= 3
        seen.extend(page_ids)
        pages += 1
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break
        assert pages < 10, "pagination does not terminate"

    assert seen == expected
    assert pages == 3

    # A page that ends exactly at the last row has no next cursor.
    exact = client.get("/v1/verdicts", params={"model_name": name, "limit": 7}).json()
    assert [v["id"] for v in exact["items"]] == expected
    assert exact["next_cursor"] is None


def test_cursor_combines_with_filters(client: TestClient, rows: Rows) -> None:
    name = model_name()
    ai = [rows.verdict(model_name=name, label=label) for label in ("ai", "real", "ai", "ai")]
    expected = [ai[0], ai[2], ai[3]]

    first = client.get("/v1/verdicts", params={"model_name": name, "label": "ai", "limit": 2})
    cursor = first.json()["next_cursor"]
    second = client.get(
        "/v1/verdicts",
        params={"model_name": name, "label": "ai", "limit": 2, "cursor": cursor},
    )

    assert _ids(first) + _ids(second) == expected
    assert second.json()["next_cursor"] is None


def test_page_size_is_capped(client: TestClient, settings: Settings, rows: Rows) -> None:
    name = model_name()
    rows.verdict(model_name=name)
    cap = settings.api_max_page_size

    ok = client.get("/v1/verdicts", params={"model_name": name, "limit": cap})
    too_big = client.get("/v1/verdicts", params={"model_name": name, "limit": cap + 1})

    assert ok.status_code == 200, ok.text
    error = assert_error(too_big, 422, "validation_error")
    assert str(cap) in error["message"]
    assert_error(client.get("/v1/verdicts", params={"limit": 0}), 422, "validation_error")


def test_default_page_size_is_100(client: TestClient, database_url: str) -> None:
    name = model_name()
    with session_scope(database_url) as session:
        shas = [hashlib.sha256(f"{name}-{i}".encode()).hexdigest() for i in range(101)]
        session.add_all(
            Image(sha256=sha, size_bytes=1, width=1, height=1, format="PNG") for sha in shas
        )
        session.flush()
        session.add_all(
            Verdict(
                image_sha256=sha,
                model_name=name,
                model_version="v1",
                ai_score=0.2,
                label="real",
                threshold=0.5,
            )
            for sha in shas
        )

    body = client.get("/v1/verdicts", params={"model_name": name}).json()

    assert len(body["items"]) == 100
    assert body["next_cursor"] is not None


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"cursor": "!!!"}, 400, "invalid_cursor"),
        ({"cursor": "not-a-cursor"}, 400, "invalid_cursor"),
        ({"cursor": cursor_for("abc")}, 400, "invalid_cursor"),
        ({"cursor": cursor_for("-5")}, 400, "invalid_cursor"),
        ({"cursor": cursor_for("0")}, 400, "invalid_cursor"),
        ({"cursor": cursor_for("9" * 40)}, 400, "invalid_cursor"),
        ({"cursor": "x" * 65}, 422, "validation_error"),
        ({"label": "fake"}, 422, "validation_error"),
        ({"label": "AI"}, 422, "validation_error"),
        ({"since": "yesterday"}, 422, "validation_error"),
        ({"until": "2024-13-45T00:00:00"}, 422, "validation_error"),
        ({"scan_id": "abc"}, 422, "validation_error"),
        ({"scan_id": "0"}, 422, "validation_error"),
        ({"limit": "many"}, 422, "validation_error"),
    ],
)
def test_malformed_verdict_queries_are_json_4xx(
    client: TestClient, params: dict[str, str], status: int, code: str
) -> None:
    assert_error(client.get("/v1/verdicts", params=params), status, code)


# ---------------------------------------------------------------------------------------
# Images


def test_image_history_across_two_model_versions(client: TestClient, rows: Rows) -> None:
    name = model_name()
    sha = rows.image()
    newer = rows.verdict(
        model_name=name, model_version="v2", image=sha, label="real", created_at=T0 + timedelta(1)
    )
    older = rows.verdict(model_name=name, model_version="v1", image=sha, created_at=T0)
    first_source = rows.source(key="a/first.jpg", bucket="photos")
    second_source = rows.source(key="b/second.jpg", bucket="photos")
    early_scan, late_scan = rows.scan(), rows.scan()
    rows.item(
        late_scan,
        status=ItemStatus.CACHED,
        source_id=second_source,
        verdict_id=newer,
        created_at=T0 + timedelta(hours=2),
    )
    rows.item(
        early_scan,
        status=ItemStatus.SCORED,
        source_id=first_source,
        verdict_id=older,
        created_at=T0 + timedelta(hours=1),
    )
    rows.item(  # seen again under the first source later: first seen stays the earliest
        late_scan,
        status=ItemStatus.CACHED,
        source_id=first_source,
        verdict_id=newer,
        created_at=T0 + timedelta(hours=3),
    )

    response = client.get(f"/v1/images/{sha}")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["image"] == {
        "sha256": sha,
        "size_bytes": 1234,
        "width": 32,
        "height": 24,
        "format": "JPEG",
        "created_at": body["image"]["created_at"],
    }
    assert [(v["id"], v["model_version"], v["label"]) for v in body["verdicts"]] == [
        (older, "v1", "ai"),
        (newer, "v2", "real"),
    ]
    assert [s["uri"] for s in body["sources"]] == [
        "s3://photos/a/first.jpg",
        "s3://photos/b/second.jpg",
    ]
    assert datetime.fromisoformat(body["sources"][0]["first_seen_at"]) == T0 + timedelta(hours=1)
    assert body["sources_truncated"] is False
    # Upper-case hex names the same image.
    assert client.get(f"/v1/images/{sha.upper()}").json()["image"]["sha256"] == sha


def test_image_without_verdicts_or_sources(client: TestClient, rows: Rows) -> None:
    sha = rows.image()
    body = client.get(f"/v1/images/{sha}").json()
    assert body["verdicts"] == []
    assert body["sources"] == []


def test_unknown_image_is_a_json_404(client: TestClient) -> None:
    sha = hashlib.sha256(b"never stored").hexdigest()
    error = assert_error(client.get(f"/v1/images/{sha}"), 404, "not_found")
    assert sha in error["message"]


@pytest.mark.parametrize("bad", ["xyz", "a" * 63, "a" * 65, "g" * 64, "%20" + "a" * 61])
def test_malformed_sha256_is_a_json_422(client: TestClient, bad: str) -> None:
    assert_error(client.get(f"/v1/images/{bad}"), 422, "validation_error")


# ---------------------------------------------------------------------------------------
# Health


def test_healthz_ok(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}


def test_healthz_reports_a_dead_broker(settings: Settings) -> None:
    broken = settings.model_copy(update={"broker_url": DEAD_BROKER_URL})
    with TestClient(create_app(broken)) as test_client:
        response = test_client.get("/healthz")

    assert response.status_code == 503, response.text
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["database"] == "ok"
    assert body["broker"].startswith("unavailable")
    assert "broker" in body["error"]["message"]


def test_healthz_reports_a_dead_database(settings: Settings) -> None:
    broken = settings.model_copy(
        update={"database_url": "postgresql://postgres@127.0.0.1:1/nowhere"}
    )
    response = TestClient(create_app(broken)).get("/healthz")  # no lifespan: it would refuse

    assert response.status_code == 503, response.text
    body = response.json()
    assert body["database"].startswith("unavailable")
    assert body["broker"] == "ok"


# ---------------------------------------------------------------------------------------
# Starting scans (needs workers.dispatch.start_scan and the Redis broker)


def test_post_scan_queues_the_listing(
    client: TestClient, database_url: str, broker: redis.Redis
) -> None:
    assert broker.llen("listing") == 0

    response = client.post("/v1/scans", json={"source": "s3://modscan-api-test/uploads/2024/"})

    assert response.status_code == 202, response.text
    body = response.json()
    assert body["source"] == "s3://modscan-api-test/uploads/2024/"
    assert body["progress"] is None
    assert response.headers["location"] == f"/v1/scans/{body['id']}"
    with session_scope(database_url) as session:
        scan = session.scalars(select(Scan).where(Scan.id == body["id"])).one()
        assert scan.source_uri == "s3://modscan-api-test/uploads/2024/"
    assert broker.llen("listing") == 1
    assert client.get(f"/v1/scans/{body['id']}").json()["id"] == body["id"]


def test_post_scan_with_a_dead_broker_is_a_clear_503(
    settings: Settings, client: TestClient
) -> None:
    broken = settings.model_copy(update={"broker_url": DEAD_BROKER_URL})
    with TestClient(create_app(broken)) as test_client:
        test_client.headers["Authorization"] = client.headers["Authorization"]
        response = test_client.post("/v1/scans", json={"source": "s3://modscan-api-test/x"})

    error = assert_error(response, 503, "broker_unavailable")
    assert "broker" in error["message"]


@pytest.mark.parametrize(
    "source",
    [
        "/etc/passwd",
        "./images",
        "file:///srv/images",
        "C:\\images",
        "s3://",
        "s3:///prefix",
        "s3://ab",
        "s3://Upper_Case",
        "s3://-leading-hyphen",
        "s3://two..dots",
        "s3://192.168.1.10/prefix",
        "s3://" + "a" * 64,
        "http://example.com/images",
        "sqs://queue",
        "bucket/prefix",
        "s3://bucket/bad\x00key",
    ],
)
def test_post_scan_with_a_bad_source_is_a_400(
    client: TestClient, database_url: str, source: str
) -> None:
    with session_scope(database_url) as session:
        before = len(session.scalars(select(Scan.id)).all())

    assert_error(client.post("/v1/scans", json={"source": source}), 400, "invalid_source")

    with session_scope(database_url) as session:
        assert len(session.scalars(select(Scan.id)).all()) == before


@pytest.mark.parametrize(
    "body",
    [{}, {"source": ""}, {"source": 42}, {"source": "s3://bucket", "status": "completed"}],
)
def test_post_scan_with_a_malformed_body_is_a_422(client: TestClient, body: Any) -> None:
    assert_error(client.post("/v1/scans", json=body), 422, "validation_error")


def test_post_scan_with_invalid_json_is_a_422(client: TestClient) -> None:
    response = client.post(
        "/v1/scans", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_error(response, 422, "validation_error")


# ---------------------------------------------------------------------------------------
# The app itself


def test_unknown_routes_and_methods_answer_json(client: TestClient) -> None:
    assert_error(client.get("/v1/nothing-here"), 404, "not_found")
    assert_error(client.delete("/v1/scans/1"), 405, "method_not_allowed")


def test_openapi_describes_the_api(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert schema["info"]["title"] == "modscan"
    assert schema["info"]["version"]
    assert schema["info"]["description"]
    assert {"/v1/scans", "/v1/scans/{scan_id}", "/v1/verdicts", "/v1/images/{sha256}"} <= set(
        schema["paths"]
    )
    assert client.get("/docs").status_code == 200


def test_refuses_to_start_on_an_unmigrated_database(redis_url: str) -> None:
    with postgres_database(prefix="modscan_api_unmigrated") as url:
        app = create_app(Settings(database_url=url, broker_url=redis_url))
        with pytest.raises(DatabaseNotMigrated, match="modscan migrate"), TestClient(app):
            pass
        # Nothing was created behind the user's back.
        with psycopg.connect(url) as conn:
            tables = conn.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
            ).fetchone()
        assert tables == (0,)
