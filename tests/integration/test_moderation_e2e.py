"""The moderation workflow end to end: a submitter's scan of an S3 prefix through Redis and a
real `modscan worker`, verdicts routed by the policy into the review queue, a reviewer's
decisions over the API, events relayed to a Redis stream, an audit trail that verifies, and
an export that says who decided what, on which model and policy."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from db.export import export_rows
from db.keys import issue_key
from db.policy import PolicyDraft, change_policy
from db.session import session_scope
from modscan.settings import Settings
from tests.integration.helpers import fill_bucket, worker_env
from tests.support.services import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@dataclass
class Stack:
    settings: Settings
    client: TestClient
    tokens: dict[str, str]
    stream: str

    def as_(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


@pytest.fixture
def stack(
    pg_url: str, redis_url: str, moto_endpoint: str, small_model: Path, tmp_path: Path
) -> Iterator[Stack]:
    stream = f"modscan:e2e:{uuid.uuid4().hex}"
    env = {
        **worker_env(pg_url, redis_url, moto_endpoint, small_model),
        "MODSCAN_OUTBOX_REDIS_URL": redis_url,  # the broker's database: a stream of its own
        "MODSCAN_OUTBOX_REDIS_STREAM": stream,
    }
    settings = Settings(
        database_url=pg_url,
        broker_url=redis_url,
        s3_endpoint_url=moto_endpoint,
        model_path=small_model,
        outbox_redis_url=redis_url,
        outbox_redis_stream=stream,
    )
    with session_scope(pg_url) as session:
        tokens = {
            role: issue_key(session, name=role, role=role, actor="cli:ops").token
            for role in ("submitter", "reviewer", "auditor")
        }
        # An untrained model scores everything near 0.5: this band sends it all to review.
        change_policy(session, PolicyDraft(low=0.0, high=1.0), actor="cli:ops")
    worker = WorkerProcess(env, tmp_path / "worker.log", queues="listing,inference")
    try:
        worker.wait_ready()
        with TestClient(create_app(settings)) as client:
            yield Stack(settings, client, tokens, stream)
    finally:
        worker.stop()
        redis.Redis.from_url(redis_url).delete(stream)


def _wait_completed(stack: Stack, scan_id: int, timeout: float = 180.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = stack.client.get(f"/v1/scans/{scan_id}", headers=stack.as_("submitter")).json()
        if body["status"] in ("completed", "failed"):
            return dict(body)
        time.sleep(0.5)
    raise AssertionError(f"scan {scan_id} did not finish in {timeout}s")


@pytest.mark.slow(seconds=25)
def test_scan_review_relay_audit_export(stack: Stack) -> None:
    from workers.outbound.relay import relay_once

    s3 = boto3.client("s3", endpoint_url=stack.settings.s3_endpoint_url, region_name="us-east-1")
    contents = fill_bucket(s3, "moderated", images=6, duplicates=1)
    created = stack.client.post(
        "/v1/scans",
        json={"source": f"s3://moderated/{contents.prefix}"},
        headers=stack.as_("submitter"),
    )
    assert created.status_code == 202, created.text
    scan = _wait_completed(stack, created.json()["id"])
    assert scan["status"] == "completed"

    # Every distinct good image has a needs_review verdict and an open review.
    queue = stack.client.get("/v1/review/queue", headers=stack.as_("reviewer")).json()
    assert queue["remaining"]["open"] == contents.distinct_good == len(queue["items"])

    # The reviewer decides two; the submitter may not.
    decided: dict[int, str] = {}
    for decision in ("confirm_ai", "confirm_real"):
        claimed = stack.client.post("/v1/review/claim", headers=stack.as_("reviewer"))
        assert claimed.status_code == 200, claimed.text
        verdict_id = claimed.json()["verdict_id"]
        answer = stack.client.post(
            f"/v1/review/{verdict_id}",
            json={"decision": decision, "note": "e2e"},
            headers=stack.as_("reviewer"),
        )
        assert answer.status_code == 200, answer.text
        decided[verdict_id] = decision
    refused = stack.client.post(
        f"/v1/review/{next(iter(decided))}",
        json={"decision": "confirm_real", "note": ""},
        headers=stack.as_("submitter"),
    )
    assert refused.status_code == 403

    # The relay sends one event per needs-review verdict and per decision.
    relay_once(stack.settings, limit=500)
    events = redis.Redis.from_url(stack.settings.outbox_redis_url or "", decode_responses=True)
    entries: list[tuple[str, dict[str, str]]] = events.xrange(stack.stream)  # type: ignore[assignment]
    topics = [fields["topic"] for _, fields in entries]
    assert topics.count("verdict.needs_review") == contents.distinct_good
    assert topics.count("review.decided") == 2
    bodies = [json.loads(fields["body"]) for _, fields in entries]
    decisions = [b["data"] for b in bodies if b["topic"] == "review.decided"]
    sent = {d["verdict_id"]: d["decision"] for d in decisions}
    assert sent == decided

    # The audit trail holds it all, names the reviewer, and its chain verifies.
    auditor = stack.as_("auditor")
    assert stack.client.get("/v1/audit/verify", headers=auditor).json()["ok"] is True
    verdict_id = next(iter(decided))
    trail = stack.client.get(
        "/v1/audit",
        params={"subject_type": "verdict", "subject_id": str(verdict_id)},
        headers=auditor,
    ).json()["items"]
    reviewer_actor = "key:" + stack.tokens["reviewer"].split("_")[1]
    assert [(e["action"], e["actor"]) for e in trail] == [
        ("verdict.written", "worker"),
        ("review.claimed", reviewer_actor),
        ("review.decided", reviewer_actor),
    ]
    assert trail[2]["after"]["decision"] == decided[verdict_id]

    # The export answers who decided what, on which model and policy, and when.
    with session_scope(stack.settings.resolved_database_url) as session:
        rows = [r for r in export_rows(session, scan_id=scan["id"]) if r["review_decision"]]
    assert {r["review_decision"] for r in rows} == set(decided.values())
    assert {r["reviewed_by"] for r in rows} == {reviewer_actor}
    assert {r["policy_version"] for r in rows} == {1}
    assert all(r["model_version"] == "untrained" and r["reviewed_at"] for r in rows)
