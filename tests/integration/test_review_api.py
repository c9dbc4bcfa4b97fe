"""The review queue over HTTP: order, filters, leases, decisions, roles, blind review and
the image endpoint, against real PostgreSQL (and SQLite where it is cheap) and moto S3."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from api.app import create_app
from db.audit import AuditActions
from db.models import AuditEvent, OutboxMessage, Review, Role, Verdict
from db.reviews import ReviewConflict, claim_next, decide, open_reviews
from db.session import session_scope
from modscan.settings import Settings
from tests.support.factories import (
    make_key,
    make_review_item,
    make_scan,
    s3_upload,
    set_blind_review,
)
from tests.support.images import jpeg_bytes

pytestmark = pytest.mark.integration

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
MAX_PAGE = 20


@dataclass
class Api:
    """A TestClient over one database, and a key for each role."""

    url: str
    client: TestClient
    keys: dict[str, tuple[str, str]] = field(default_factory=dict)  # who → (token, actor)

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who][0]}"}

    def actor(self, who: str) -> str:
        return self.keys[who][1]

    def get(self, path: str, who: str, **kwargs: Any) -> Any:
        return self.client.get(path, headers=self.auth(who), **kwargs)

    def post(self, path: str, who: str, **kwargs: Any) -> Any:
        return self.client.post(path, headers=self.auth(who), **kwargs)


def _api(url: str, **overrides: Any) -> Iterator[Api]:
    settings = Settings(
        database_url=url, api_max_page_size=MAX_PAGE, api_rate_limit_per_minute=0, **overrides
    )
    keys = {
        who: make_key(url, role, name=who)
        for who, role in [
            ("alice", Role.REVIEWER),
            ("bob", Role.REVIEWER),
            ("carol", Role.REVIEWER),
            ("auditor", Role.AUDITOR),
            ("submitter", Role.SUBMITTER),
            ("admin", Role.ADMIN),
        ]
    }
    with TestClient(create_app(settings)) as client:
        yield Api(url=url, client=client, keys=keys)


@pytest.fixture
def api(db_url: str) -> Iterator[Api]:
    """On PostgreSQL and on SQLite."""
    yield from _api(db_url)


@pytest.fixture
def pg_api(pg_url: str, redis_url: str) -> Iterator[Api]:
    """On PostgreSQL, with an outbox target configured (nothing relays it here)."""
    yield from _api(pg_url, outbox_redis_url=redis_url)


@pytest.fixture
def s3_api(pg_url: str, moto_endpoint: str) -> Iterator[Api]:
    """On PostgreSQL, reading images from moto's S3."""
    yield from _api(pg_url, s3_endpoint_url=moto_endpoint)


def review_row(url: str, verdict_id: int) -> Review:
    with session_scope(url) as session:
        review = session.scalars(select(Review).where(Review.verdict_id == verdict_id)).one()
        session.expunge(review)
        return review


def decide_body(decision: str, note: str | None = None) -> dict[str, Any]:
    return {"decision": decision, "note": note}


# ---------------------------------------------------------------------------------------
# The queue


def test_open_reviews_is_idempotent(db_url: str) -> None:
    first = make_review_item(db_url, seed=1, open_review=False)
    second = make_review_item(db_url, seed=2, open_review=False)
    with session_scope(db_url) as session:
        assert open_reviews(session, [first.verdict_id, second.verdict_id]) == 2
    with session_scope(db_url) as session:
        assert open_reviews(session, [second.verdict_id, first.verdict_id, first.verdict_id]) == 0
        assert open_reviews(session, []) == 0
        assert len(session.scalars(select(Review)).all()) == 2


def test_queue_is_oldest_first_filtered_and_paged(api: Api) -> None:
    scan = make_scan(api.url)
    newest = make_review_item(api.url, seed=1, created_at=T0 + timedelta(hours=2), scan_id=scan)
    oldest = make_review_item(api.url, seed=2, created_at=T0, model_version="v2")
    middle = make_review_item(api.url, seed=3, created_at=T0 + timedelta(hours=1), scan_id=scan)

    response = api.get("/v1/review/queue", "alice")
    assert response.status_code == 200, response.text
    body = response.json()
    assert [i["verdict_id"] for i in body["items"]] == [
        oldest.verdict_id,
        middle.verdict_id,
        newest.verdict_id,
    ]
    assert body["remaining"] == {"open": 3, "escalated": 0, "decided": 0}
    assert body["next_cursor"] is None
    first = body["items"][0]
    assert first["source_uri"] == oldest.source_uri
    assert first["image_url"] == f"/v1/review/{oldest.verdict_id}/image"
    assert first["ai_score"] == pytest.approx(0.55) and first["scores_hidden"] is False

    def ids(**params: Any) -> list[int]:
        response = api.get("/v1/review/queue", "auditor", params=params)
        assert response.status_code == 200, response.text
        return [i["verdict_id"] for i in response.json()["items"]]

    assert ids(model_version="v2") == [oldest.verdict_id]
    assert ids(scan_id=scan) == [middle.verdict_id, newest.verdict_id]
    assert ids(since=(T0 + timedelta(minutes=30)).isoformat()) == [
        middle.verdict_id,
        newest.verdict_id,
    ]
    assert ids(state="decided") == []

    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = api.get("/v1/review/queue", "alice", params=params).json()
        seen += [i["verdict_id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [oldest.verdict_id, middle.verdict_id, newest.verdict_id]

    capped = api.get("/v1/review/queue", "alice", params={"limit": MAX_PAGE + 1})
    assert capped.status_code == 422 and capped.json()["error"]["code"] == "validation_error"
    assert api.get("/v1/review/queue", "alice", params={"limit": MAX_PAGE}).status_code == 200
    assert api.get("/v1/review/queue", "alice", params={"cursor": "!!"}).status_code == 400


# ---------------------------------------------------------------------------------------
# Leases


def test_claims_are_exclusive_and_leases_expire(api: Api) -> None:
    first = make_review_item(api.url, seed=1, created_at=T0)
    second = make_review_item(api.url, seed=2, created_at=T0 + timedelta(minutes=1))

    alice = api.post("/v1/review/claim", "alice")
    assert alice.status_code == 200, alice.text
    assert alice.json()["verdict_id"] == first.verdict_id
    assert alice.json()["claimed_by"] == api.actor("alice")
    # Claiming again (a page reload) gives alice the same item, not another.
    assert api.post("/v1/review/claim", "alice").json()["verdict_id"] == first.verdict_id

    bob = api.post("/v1/review/claim", "bob")
    assert bob.json()["verdict_id"] == second.verdict_id
    assert api.post("/v1/review/claim", "carol").status_code == 204

    taken = api.post(f"/v1/review/{first.verdict_id}", "bob", json=decide_body("confirm_ai"))
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "conflict"
    assert api.post(f"/v1/review/{first.verdict_id}/claim", "bob").status_code == 409
    assert review_row(api.url, first.verdict_id).state == "open"

    with session_scope(api.url) as session:  # alice's lease runs out
        session.execute(
            update(Review)
            .where(Review.verdict_id == first.verdict_id)
            .values(claim_expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    carol = api.post("/v1/review/claim", "carol")
    assert carol.json()["verdict_id"] == first.verdict_id
    assert carol.json()["claimed_by"] == api.actor("carol")
    decided = api.post(f"/v1/review/{first.verdict_id}", "carol", json=decide_body("confirm_real"))
    assert decided.status_code == 200, decided.text
    late = api.post(f"/v1/review/{first.verdict_id}", "alice", json=decide_body("confirm_ai"))
    assert late.status_code == 409
    assert review_row(api.url, first.verdict_id).decided_by == api.actor("carol")

    with session_scope(api.url) as session:
        claims = session.scalars(
            select(AuditEvent).where(AuditEvent.action == AuditActions.REVIEW_CLAIMED)
        ).all()
    # alice, bob, then carol taking over: alice's reload renewed her lease unaudited.
    assert [e.actor for e in claims] == [api.actor(w) for w in ("alice", "bob", "carol")]
    assert json.loads(claims[-1].before or "{}")["claimed_by"] == api.actor("alice")


def test_a_racing_claimer_gets_the_next_item(pg_url: str) -> None:
    """Two claims in flight at once (the first not yet committed) take different items."""
    first = make_review_item(pg_url, seed=1, created_at=T0)
    second = make_review_item(pg_url, seed=2, created_at=T0 + timedelta(minutes=1))
    raced: list[int | None] = []

    def other_reviewer() -> None:
        with session_scope(pg_url) as session:
            review = claim_next(session, actor="key:two", lease_s=60)
            raced.append(review.verdict_id if review is not None else None)

    with session_scope(pg_url) as session:
        taken = claim_next(session, actor="key:one", lease_s=60)
        assert taken is not None and taken.verdict_id == first.verdict_id
        thread = threading.Thread(target=other_reviewer)
        thread.start()
        thread.join(timeout=1.0)  # it waits for this transaction's audit append
    thread.join(timeout=30)
    assert raced == [second.verdict_id]
    assert review_row(pg_url, first.verdict_id).claimed_by == "key:one"
    assert review_row(pg_url, second.verdict_id).claimed_by == "key:two"


# ---------------------------------------------------------------------------------------
# Decisions


def test_decision_is_audited_and_sent_through_the_outbox(pg_api: Api) -> None:
    item = make_review_item(pg_api.url, seed=1)
    other = make_review_item(pg_api.url, seed=2)
    pg_api.post(f"/v1/review/{item.verdict_id}/claim", "alice")

    response = pg_api.post(
        f"/v1/review/{item.verdict_id}", "alice", json=decide_body("confirm_ai", "GAN seams")
    )

    assert response.status_code == 200, response.text
    assert response.json()["state"] == "decided" and response.json()["decision"] == "confirm_ai"
    review = review_row(pg_api.url, item.verdict_id)
    assert (review.state, review.decision, review.note) == ("decided", "confirm_ai", "GAN seams")
    assert review.decided_by == pg_api.actor("alice") and review.claimed_by is None
    with session_scope(pg_api.url) as session:
        event = session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == AuditActions.REVIEW_DECIDED,
                AuditEvent.subject_id == str(item.verdict_id),
            )
        ).one()
        outbox = session.scalars(select(OutboxMessage)).all()
        assert (event.actor, event.subject_type) == (pg_api.actor("alice"), "verdict")
        before, after = json.loads(event.before or ""), json.loads(event.after or "")
        assert before["state"] == "open" and before["decision"] is None
        assert before["claimed_by"] == pg_api.actor("alice")
        assert after["state"] == "decided" and after["decision"] == "confirm_ai"
        assert after["decided_by"] == pg_api.actor("alice") and after["note"] == "GAN seams"
        assert [(m.target, m.topic) for m in outbox] == [("redis", "review.decided")]
        data = json.loads(outbox[0].payload)["data"]
        assert data["verdict_id"] == item.verdict_id and data["image_sha256"] == item.sha256
        assert data["decision"] == "confirm_ai" and data["decided_by"] == pg_api.actor("alice")
        assert data["model_version"] == "v1" and "policy_version" in data

    # Escalation: out of the reviewers' hands, into an admin's.
    up = pg_api.post(f"/v1/review/{other.verdict_id}", "bob", json=decide_body("escalate"))
    assert up.status_code == 200 and up.json()["state"] == "escalated"
    again = pg_api.post(f"/v1/review/{other.verdict_id}", "alice", json=decide_body("confirm_ai"))
    assert again.status_code == 403
    assert pg_api.post("/v1/review/claim", "alice").status_code == 204
    assert pg_api.post("/v1/review/claim?state=escalated", "alice").status_code == 403
    admin_claim = pg_api.post("/v1/review/claim?state=escalated", "admin")
    assert admin_claim.json()["verdict_id"] == other.verdict_id
    final = pg_api.post(f"/v1/review/{other.verdict_id}", "admin", json=decide_body("confirm_real"))
    assert final.status_code == 200 and final.json()["state"] == "decided"
    with session_scope(pg_api.url) as session:
        assert len(session.scalars(select(OutboxMessage)).all()) == 3


def test_decision_without_outbox_targets_writes_no_outbox_row(api: Api) -> None:
    item = make_review_item(api.url, seed=1)
    path = f"/v1/review/{item.verdict_id}"
    assert api.post(path, "alice", json=decide_body("confirm_real")).status_code == 200
    assert review_row(api.url, item.verdict_id).state == "decided"
    with session_scope(api.url) as session:
        assert session.scalars(select(OutboxMessage)).all() == []


@pytest.mark.parametrize(
    "body",
    [
        {"decision": "confirm_ai", "ai_score": 0.0},
        {"decision": "confirm_ai", "label": "real"},
        {"decision": "confirm_ai", "decided_by": "key:someone"},
        {"decision": "approve"},
        {"note": "no decision"},
        {"decision": "confirm_ai", "note": "x" * 2001},
    ],
)
def test_decision_body_allows_no_extra_or_bad_fields(api: Api, body: dict[str, Any]) -> None:
    item = make_review_item(api.url, seed=1, ai_score=0.42)
    response = api.post(f"/v1/review/{item.verdict_id}", "alice", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"
    with session_scope(api.url) as session:
        verdict = session.get_one(Verdict, item.verdict_id)
        assert verdict.ai_score == pytest.approx(0.42) and verdict.label == "real"
    assert review_row(api.url, item.verdict_id).state == "open"


def test_decide_refuses_a_live_lease_held_by_another(db_url: str) -> None:
    item = make_review_item(db_url, seed=1)
    with session_scope(db_url) as session:
        assert claim_next(session, actor="key:a", lease_s=300) is not None
    with session_scope(db_url) as session, pytest.raises(ReviewConflict):
        decide(
            session,
            verdict_id=item.verdict_id,
            decision="confirm_ai",
            note=None,
            actor="key:b",
            outbox_targets=[],
        )
    with session_scope(db_url) as session, pytest.raises(ValueError):
        decide(
            session,
            verdict_id=item.verdict_id,
            decision="approve",
            note=None,
            actor="key:a",
            outbox_targets=[],
        )


# ---------------------------------------------------------------------------------------
# Who sees what


def test_blind_policy_hides_scores_from_reviewers_not_auditors(pg_api: Api) -> None:
    item = make_review_item(pg_api.url, seed=1, ai_score=0.6133, check_score=0.4477)
    set_blind_review(pg_api.url, True)

    blind = pg_api.get("/v1/review/queue", "alice")
    entry = blind.json()["items"][0]
    assert entry["scores_hidden"] is True
    assert entry["ai_score"] is None and entry["label"] is None and entry["check_score"] is None
    assert "0.6133" not in blind.text and "0.4477" not in blind.text
    claimed = pg_api.post("/v1/review/claim", "alice")
    assert claimed.json()["ai_score"] is None and "0.6133" not in claimed.text
    page = pg_api.client.get("/review", headers=pg_api.auth("alice"))
    assert page.status_code == 200 and item.source_uri in page.text
    assert "hidden (blind review)" in page.text and "0.613" not in page.text

    seen = pg_api.get("/v1/review/queue", "auditor").json()["items"][0]
    assert seen["scores_hidden"] is False and seen["ai_score"] == pytest.approx(0.6133)
    assert pg_api.get("/v1/review/queue", "admin").json()["items"][0]["label"] == "ai"

    set_blind_review(pg_api.url, False)
    assert pg_api.get("/v1/review/queue", "alice").json()["items"][0]["ai_score"] == 0.6133
    page = pg_api.client.get("/review", headers=pg_api.auth("alice"))
    assert "0.613 (ai)" in page.text


def test_every_endpoint_checks_the_role(pg_api: Api) -> None:
    item = make_review_item(pg_api.url, seed=1)
    unreviewed = make_review_item(pg_api.url, seed=2, open_review=False)
    body = decide_body("confirm_ai")
    calls = [
        ("GET", "/v1/review/queue", None),
        ("POST", "/v1/review/claim", None),
        ("POST", f"/v1/review/{item.verdict_id}/claim", None),
        ("POST", f"/v1/review/{item.verdict_id}", body),
        ("GET", f"/v1/review/{item.verdict_id}/image", None),
    ]
    for method, path, json_body in calls:
        anonymous = pg_api.client.request(method, path, json=json_body)
        assert anonymous.status_code == 401, (method, path)
        forged = pg_api.client.request(
            method, path, json=json_body, headers={"Authorization": "Bearer msk_nope_x"}
        )
        assert forged.status_code == 401, (method, path)
        submitter = pg_api.client.request(
            method, path, json=json_body, headers=pg_api.auth("submitter")
        )
        assert submitter.status_code == 403, (method, path)

    assert pg_api.get("/v1/review/queue", "auditor").status_code == 200
    for path in ("/v1/review/claim", f"/v1/review/{item.verdict_id}/claim"):
        assert pg_api.post(path, "auditor").status_code == 403
    assert pg_api.post(f"/v1/review/{item.verdict_id}", "auditor", json=body).status_code == 403
    assert review_row(pg_api.url, item.verdict_id).state == "open"

    for verdict_id in (987654321, unreviewed.verdict_id):
        assert pg_api.post(f"/v1/review/{verdict_id}", "alice", json=body).status_code == 404
        assert pg_api.post(f"/v1/review/{verdict_id}/claim", "alice").status_code == 404
        assert pg_api.get(f"/v1/review/{verdict_id}/image", "auditor").status_code == 404
    assert pg_api.post("/v1/review/0", "alice", json=body).status_code == 422


def test_cookie_login_and_csrf_header(pg_api: Api) -> None:
    item = make_review_item(pg_api.url, seed=1, key="uploads/<b>bold</b>.jpg")
    client = pg_api.client
    form = {"Content-Type": "application/x-www-form-urlencoded"}

    assert client.get("/review", follow_redirects=False).headers["location"] == "/review/login"
    refused = client.post("/review/login", content="key=msk_nope", headers=form)
    assert refused.status_code == 401 and "unknown or revoked" in refused.text
    submitter = client.post("/review/login", data={"key": pg_api.keys["submitter"][0]})
    assert submitter.status_code == 403 and "reviewer or admin" in submitter.text
    assert "modscan_key" not in client.cookies
    cross_site = client.post(
        "/review/login",
        data={"key": pg_api.keys["alice"][0]},
        headers={"Origin": "https://evil.example"},
    )
    assert cross_site.status_code == 403 and "modscan_key" not in client.cookies

    login = client.post(
        "/review/login", data={"key": pg_api.keys["alice"][0]}, follow_redirects=False
    )
    assert login.status_code == 303 and login.headers["location"] == "/review"
    cookie = login.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "modscan_key=" in cookie

    page = client.get("/review")
    assert page.status_code == 200 and "1 left" in page.text
    assert "&lt;b&gt;bold&lt;/b&gt;" in page.text and "<b>bold</b>" not in page.text
    assert "script-src 'nonce-" in page.headers["content-security-policy"]

    path = f"/v1/review/{item.verdict_id}"
    without = client.post(path, json=decide_body("confirm_real"))
    assert without.status_code == 403 and without.json()["error"]["code"] == "csrf"
    assert review_row(pg_api.url, item.verdict_id).state == "open"
    with_header = client.post(
        path, json=decide_body("confirm_real"), headers={"X-Modscan-Csrf": "1"}
    )
    assert with_header.status_code == 200, with_header.text
    assert "Queue empty" in client.get("/review").text

    logout = client.post("/review/logout", follow_redirects=False)
    assert logout.status_code == 303 and "modscan_key" not in client.cookies
    assert client.get("/v1/review/queue").status_code == 401


# ---------------------------------------------------------------------------------------
# The image


def test_image_is_served_only_when_its_bytes_still_match(s3_api: Api, moto_endpoint: str) -> None:
    data = jpeg_bytes(7)
    item = make_review_item(s3_api.url, data=data, bucket="review-images", key="in/cat.jpg")
    s3_upload(moto_endpoint, "review-images", "in/cat.jpg", data)

    response = s3_api.get(f"/v1/review/{item.verdict_id}/image", "alice")

    assert response.status_code == 200, response.text
    assert response.content == data
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["cache-control"] == "private, max-age=60"
    assert s3_api.get(f"/v1/review/{item.verdict_id}/image", "auditor").status_code == 200

    s3_upload(moto_endpoint, "review-images", "in/cat.jpg", jpeg_bytes(8))  # overwritten
    changed = s3_api.get(f"/v1/review/{item.verdict_id}/image", "alice")
    assert changed.status_code == 404 and "unchanged" in changed.json()["error"]["message"]

    gone = make_review_item(s3_api.url, seed=9, bucket="review-images", key="in/never.jpg")
    assert s3_api.get(f"/v1/review/{gone.verdict_id}/image", "alice").status_code == 404
