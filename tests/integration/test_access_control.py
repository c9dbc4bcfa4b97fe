"""Who may call what: every /v1 endpoint with every role and with no key, object-level
checks on ids, revoked and forged keys, mass assignment, and the rate limit.

The route table below must name every /v1 route the app serves, so a new endpoint
without a decision about its roles fails here.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from db.keys import issue_key, revoke_key
from db.models import ApiKey, Role
from db.session import session_scope
from modscan.settings import Settings
from tests.support.factories import make_review_item
from tests.support.services import MigratedDatabases

pytestmark = pytest.mark.integration

# Distinct images for the fresh review items (one seed, one image, one verdict): str hashes
# vary per process, so they cannot pick seeds without collisions.
_SEEDS = itertools.count(1000)
ALL = set(Role.ALL)
SUB, REV, AUD, ADM = Role.SUBMITTER, Role.REVIEWER, Role.AUDITOR, Role.ADMIN

# (method, path template) → roles allowed. Admin may do everything.
ROUTES: dict[tuple[str, str], set[str]] = {
    ("POST", "/v1/scans"): {SUB, ADM},
    ("GET", "/v1/scans/{scan_id}"): {SUB, AUD, ADM},
    ("GET", "/v1/verdicts"): {SUB, AUD, ADM},
    ("GET", "/v1/images/{sha256}"): {SUB, AUD, ADM},
    ("GET", "/v1/policy"): ALL,
    ("POST", "/v1/policy"): {ADM},
    ("POST", "/v1/policy/dry-run"): {AUD, ADM},
    ("GET", "/v1/audit"): {AUD, ADM},
    ("GET", "/v1/audit/verify"): {AUD, ADM},
    ("GET", "/v1/keys"): {AUD, ADM},
    ("POST", "/v1/keys"): {ADM},
    ("DELETE", "/v1/keys/{key_id}"): {ADM},
    ("GET", "/v1/review/queue"): {REV, AUD, ADM},
    ("POST", "/v1/review/claim"): {REV, ADM},
    ("POST", "/v1/review/{verdict_id}/claim"): {REV, ADM},
    ("POST", "/v1/review/{verdict_id}"): {REV, ADM},
    ("GET", "/v1/review/{verdict_id}/image"): {REV, AUD, ADM},
}
# Routes under /v1 with an authentication of their own (a shared token, not API keys).
TOKEN_ROUTES = {("POST", "/v1/ingest/minio"), ("POST", "/v1/ingest/eventbridge")}


@dataclass
class World:
    url: str
    settings: Settings
    tokens: dict[str, str]  # role → token
    other_submitter: str
    own_scan: int
    verdict_id: int
    sha256: str


@pytest.fixture(scope="module")
def world(pg_databases: MigratedDatabases, redis_session_url: str) -> Iterator[World]:
    with pg_databases.database() as url:
        settings = Settings(database_url=url, broker_url=redis_session_url)
        with session_scope(url) as session:
            tokens = {
                role: issue_key(session, name=f"{role} key", role=role, actor="test").token
                for role in Role.ALL
            }
            other = issue_key(session, name="other", role=SUB, actor="test").token
        submitter_actor = "key:" + tokens[SUB].split("_")[1]
        item = make_review_item(url, seed=3)
        with session_scope(url) as session:
            from db.models import Scan

            scan = session.get(Scan, item.scan_id)
            assert scan is not None
            scan.created_by = submitter_actor
        yield World(url, settings, tokens, other, item.scan_id, item.verdict_id, item.sha256)


@pytest.fixture(scope="module")
def client(world: World) -> Iterator[TestClient]:
    with TestClient(create_app(world.settings)) as test_client:
        yield test_client


def _path(template: str, world: World) -> str:
    return (
        template.replace("{scan_id}", str(world.own_scan))
        .replace("{sha256}", world.sha256)
        .replace("{verdict_id}", str(world.verdict_id))
        .replace("{key_id}", "0123456789ab")
    )


_BODIES = {
    ("POST", "/v1/scans"): {"source": "s3://acl-bucket/x/"},
    ("POST", "/v1/policy"): {"low": 0.1, "high": 0.9},
    ("POST", "/v1/policy/dry-run"): {"low": 0.1, "high": 0.9},
    ("POST", "/v1/keys"): {"name": "made in a test", "role": "auditor"},
    ("POST", "/v1/review/{verdict_id}"): {"decision": "escalate", "note": "acl"},
}


def _call(client: TestClient, world: World, method: str, template: str, token: str | None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = _BODIES.get((method, template))
    return client.request(method, _path(template, world), headers=headers, json=body)


def test_the_table_names_every_v1_route(client: TestClient) -> None:
    paths = client.app.openapi()["paths"]  # type: ignore[attr-defined]
    served = {
        (method.upper(), path)
        for path, operations in paths.items()
        if path.startswith("/v1/")
        for method in operations
    }
    assert served - TOKEN_ROUTES == set(ROUTES)


@pytest.mark.parametrize(("method", "template"), sorted(ROUTES))
def test_no_key_is_401(client: TestClient, world: World, method: str, template: str) -> None:
    response = _call(client, world, method, template, None)
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(("method", "template"), sorted(ROUTES))
@pytest.mark.parametrize("role", sorted(Role.ALL))
def test_each_role_gets_what_the_table_says(
    client: TestClient, world: World, method: str, template: str, role: str
) -> None:
    if "{verdict_id}" in template:  # a fresh review each time: decisions change its state
        fresh = make_review_item(world.url, seed=next(_SEEDS))
        world = replace(world, verdict_id=fresh.verdict_id)
    response = _call(client, world, method, template, world.tokens[role])
    if role in ROUTES[(method, template)] or role == ADM:
        assert response.status_code not in (401, 403), (role, response.text)
    else:
        assert response.status_code == 403, (role, response.text)
        assert response.json()["error"]["code"] == "forbidden"


def test_forged_revoked_and_malformed_keys_are_401(client: TestClient, world: World) -> None:
    good = world.tokens[AUD]
    key_id = good.split("_")[1]
    forged = f"msk_{key_id}_{'A' * 43}"
    for header in (f"Bearer {forged}", "Bearer nonsense", f"Basic {good}", "Bearer "):
        response = client.get("/v1/audit", headers={"Authorization": header})
        assert response.status_code == 401, header
    with session_scope(world.url) as session:
        issued = issue_key(session, name="short-lived", role=AUD, actor="test")
    token = issued.token
    assert client.get("/v1/audit", headers={"X-API-Key": token}).status_code == 200
    with session_scope(world.url) as session:
        revoke_key(session, key_id=token.split("_")[1], actor="test")
    assert client.get("/v1/audit", headers={"X-API-Key": token}).status_code == 401


def test_keys_are_stored_hashed(world: World) -> None:
    with session_scope(world.url) as session:
        stored = {k.key_id: k.secret_hash for k in session.scalars(select(ApiKey))}
    for token in world.tokens.values():
        _, key_id, secret = token.split("_", 2)
        assert secret not in stored[key_id] and len(stored[key_id]) == 64


def test_another_submitters_ids_are_not_found(client: TestClient, world: World) -> None:
    mine = {"Authorization": f"Bearer {world.tokens[SUB]}"}
    theirs = {"Authorization": f"Bearer {world.other_submitter}"}
    assert client.get(f"/v1/scans/{world.own_scan}", headers=mine).status_code == 200
    assert client.get(f"/v1/images/{world.sha256}", headers=mine).status_code == 200
    mine_verdicts = client.get("/v1/verdicts", headers=mine).json()["items"]
    assert [v["id"] for v in mine_verdicts] == [world.verdict_id]

    assert client.get(f"/v1/scans/{world.own_scan}", headers=theirs).status_code == 404
    assert client.get(f"/v1/images/{world.sha256}", headers=theirs).status_code == 404
    assert client.get("/v1/verdicts", headers=theirs).json()["items"] == []
    scoped = client.get("/v1/verdicts", params={"scan_id": world.own_scan}, headers=theirs)
    assert scoped.json()["items"] == []
    # An auditor sees everything.
    auditor = {"Authorization": f"Bearer {world.tokens[AUD]}"}
    assert client.get(f"/v1/scans/{world.own_scan}", headers=auditor).status_code == 200


def test_bodies_refuse_fields_they_do_not_own(client: TestClient, world: World) -> None:
    admin = {"Authorization": f"Bearer {world.tokens[ADM]}"}
    forged_policy = {"low": 0.1, "high": 0.9, "version": 99, "created_by": "someone-else"}
    assert client.post("/v1/policy", json=forged_policy, headers=admin).status_code == 422
    forged_key = {"name": "x", "role": "auditor", "key_id": "0123456789ab"}
    assert client.post("/v1/keys", json=forged_key, headers=admin).status_code == 422
    reviewer = {"Authorization": f"Bearer {world.tokens[REV]}"}
    decision = {"decision": "confirm_ai", "note": "", "ai_score": 0.0, "label": "real"}
    response = client.post(f"/v1/review/{world.verdict_id}", json=decision, headers=reviewer)
    assert response.status_code == 422
    bad_role = {"name": "x", "role": "root"}
    assert client.post("/v1/keys", json=bad_role, headers=admin).status_code == 422


def test_page_sizes_are_capped(client: TestClient, world: World) -> None:
    auditor = {"Authorization": f"Bearer {world.tokens[AUD]}"}
    cap = world.settings.api_max_page_size
    for path in ("/v1/verdicts", "/v1/audit", "/v1/review/queue"):
        assert client.get(path, params={"limit": cap}, headers=auditor).status_code == 200
        assert client.get(path, params={"limit": cap + 1}, headers=auditor).status_code == 422


def test_requests_are_rate_limited_per_key(world: World) -> None:
    settings = world.settings.model_copy(update={"api_rate_limit_per_minute": 5})
    with TestClient(create_app(settings)) as client:
        for _attempt in range(2):  # the counters are per minute: retry once across an edge
            minute = int(time.time() // 60)
            with session_scope(world.url) as session:
                first = issue_key(session, name="chatty", role=AUD, actor="test").token
                second = issue_key(session, name="quiet", role=AUD, actor="test").token
            responses = [client.get("/v1/policy", headers={"X-API-Key": first}) for _ in range(7)]
            other = client.get("/v1/policy", headers={"X-API-Key": second})
            if int(time.time() // 60) == minute:
                break
    codes = [r.status_code for r in responses]
    assert 429 not in codes[:5] and codes[5:] == [429, 429]
    assert 1 <= int(responses[-1].headers["Retry-After"]) <= 60
    assert other.status_code != 429  # the limit is per key
