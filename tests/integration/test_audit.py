"""The audit trail: the database refuses changes, the hash chain names the first broken
link, and the API and CLI filter it. Also policy changes and their dry run."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.exc import DatabaseError

from api.app import create_app
from db.audit import append_event, verify_chain
from db.keys import issue_key
from db.models import Action, AuditEvent, Verdict
from db.policy import PolicyDraft, PolicyRule, change_policy, dry_run
from db.session import get_engine, session_scope
from modscan.settings import Settings
from tests.support.cli import run_cli
from tests.support.factories import make_review_item
from tests.support.services import ROOT

pytestmark = pytest.mark.integration


def _events(url: str, n: int) -> list[int]:
    with session_scope(url) as session:
        return [
            append_event(
                session,
                actor="test",
                action="scan.created",
                subject_type="scan",
                subject_id=i,
                after={"n": i, "text": "naïve ünïcode"},
            ).id
            for i in range(n)
        ]


@pytest.mark.parametrize(
    "statement", ["UPDATE audit_events SET actor = 'x'", "DELETE FROM audit_events"]
)
def test_the_database_refuses_update_and_delete(db_url: str, statement: str) -> None:
    _events(db_url, 2)
    with pytest.raises(DatabaseError, match="append-only"), session_scope(db_url) as session:
        session.execute(text(statement))
    with session_scope(db_url) as session:
        assert len(session.scalars(select(AuditEvent)).all()) == 2
        assert verify_chain(session).ok


def test_truncate_is_refused_on_postgresql(pg_url: str) -> None:
    _events(pg_url, 1)
    with pytest.raises(DatabaseError, match="append-only"), session_scope(pg_url) as session:
        session.execute(text("TRUNCATE audit_events"))


def _bypass_triggers(url: str) -> None:
    """What an attacker with the database owner's rights can do."""
    with get_engine(url).begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        else:
            connection.execute(text("DROP TRIGGER audit_events_no_update"))
            connection.execute(text("DROP TRIGGER audit_events_no_delete"))


def test_verify_names_the_first_edited_row(db_url: str) -> None:
    ids = _events(db_url, 5)
    with session_scope(db_url) as session:
        assert verify_chain(session).checked == 5
    _bypass_triggers(db_url)
    with session_scope(db_url) as session:
        session.execute(
            text("UPDATE audit_events SET after = :after WHERE id = :id"),
            {"after": '{"n":99}', "id": ids[2]},
        )
    with session_scope(db_url) as session:
        report = verify_chain(session)
    assert not report.ok and report.broken_at == ids[2] and report.checked == 2
    assert "hash" in (report.reason or "")


def test_verify_names_the_row_after_a_deleted_one(db_url: str) -> None:
    ids = _events(db_url, 5)
    _bypass_triggers(db_url)
    with session_scope(db_url) as session:
        session.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": ids[1]})
    with session_scope(db_url) as session:
        report = verify_chain(session)
    assert report.broken_at == ids[2] and "prev_hash" in (report.reason or "")


def test_a_row_rehashed_alone_still_breaks_the_next_link(pg_url: str) -> None:
    """Fixing up the edited row's own hash moves the break to its successor."""
    from db.audit import event_hash

    ids = _events(pg_url, 4)
    _bypass_triggers(pg_url)
    with session_scope(pg_url) as session:
        row = session.get(AuditEvent, ids[1])
        assert row is not None
        forged = event_hash(
            row.prev_hash,
            occurred_at=row.occurred_at,
            actor="someone-else",
            action=row.action,
            subject_type=row.subject_type,
            subject_id=row.subject_id,
            before=row.before,
            after=row.after,
        )
        session.execute(
            text("UPDATE audit_events SET actor = 'someone-else', hash = :h WHERE id = :id"),
            {"h": forged, "id": ids[1]},
        )
    with session_scope(pg_url) as session:
        report = verify_chain(session)
    assert report.broken_at == ids[2]


def _cli(args: list[str], url: str) -> subprocess.CompletedProcess[str]:
    return run_cli(args, ROOT, {"MODSCAN_DATABASE_URL": url})


@pytest.mark.slow
def test_cli_audit_verify_and_filters(pg_url: str) -> None:
    ids = _events(pg_url, 3)
    with session_scope(pg_url) as session:
        change_policy(session, PolicyDraft(low=0.2, high=0.8), actor="cli:alice")
    ok = _cli(["audit", "verify"], pg_url)
    assert ok.returncode == 0 and "4 events" in ok.stdout, ok.stderr
    listed = _cli(["audit", "--subject-type", "policy", "--actor", "cli:alice"], pg_url)
    events = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(e["action"], e["after"]["high"]) for e in events] == [("policy.changed", 0.8)]
    _bypass_triggers(pg_url)
    with session_scope(pg_url) as session:
        session.execute(text("UPDATE audit_events SET actor = 'x' WHERE id = :id"), {"id": ids[1]})
    broken = _cli(["audit", "verify"], pg_url)
    assert broken.returncode == 1 and f"BROKEN at event {ids[1]}" in broken.stderr


@pytest.mark.slow
def test_cli_keys_create_list_revoke(pg_url: str) -> None:
    created = _cli(["keys", "create", "--name", "alice", "--role", "reviewer"], pg_url)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    key_id = token.split("_")[1]
    assert key_id in _cli(["keys", "list"], pg_url).stdout
    assert _cli(["keys", "revoke", key_id], pg_url).returncode == 0
    assert key_id not in _cli(["keys", "list"], pg_url).stdout
    with session_scope(pg_url) as session:
        actions = session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions == ["key.issued", "key.revoked"]


# --- policy --------------------------------------------------------------------------------


@pytest.fixture
def admin_client(pg_url: str) -> Iterator[tuple[TestClient, str]]:
    with session_scope(pg_url) as session:
        token = issue_key(session, name="admin", role="admin", actor="test").token
    with TestClient(create_app(Settings(database_url=pg_url))) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        yield client, "key:" + token.split("_")[1]


def test_policy_changes_are_versioned_and_audited(
    admin_client: tuple[TestClient, str], pg_url: str
) -> None:
    client, actor = admin_client
    assert client.get("/v1/policy").status_code == 404  # none until the first verdict
    first = client.post("/v1/policy", json={"low": 0.1, "high": 0.9, "note": "start"})
    second = client.post(
        "/v1/policy",
        json={"low": 0.2, "high": 0.7, "robustness_check": "off", "blind_review": True},
    )
    assert (first.status_code, second.status_code) == (201, 201)
    assert [first.json()["version"], second.json()["version"]] == [1, 2]
    now = client.get("/v1/policy").json()
    assert (now["version"], now["blind_review"], now["created_by"]) == (2, True, actor)
    assert client.post("/v1/policy", json={"low": 0.8, "high": 0.2}).status_code == 422
    events = client.get("/v1/audit", params={"subject_type": "policy"}).json()["items"]
    assert [(e["subject_id"], e["actor"]) for e in events] == [("1", actor), ("2", actor)]
    assert events[1]["before"]["high"] == 0.9 and events[1]["after"]["high"] == 0.7
    assert client.get("/v1/audit/verify").json()["ok"] is True


def test_dry_run_counts_what_would_change(
    admin_client: tuple[TestClient, str], pg_url: str
) -> None:
    client, _ = admin_client
    # Five verdicts decided under low=0.3 / high=0.7, one with a disagreeing check score.
    scores = [(0.05, None), (0.25, None), (0.5, None), (0.75, None), (0.95, 0.2)]
    with session_scope(pg_url) as session:
        change_policy(session, PolicyDraft(low=0.3, high=0.7), actor="test")
    for i, (score, check) in enumerate(scores):
        item = make_review_item(pg_url, seed=100 + i, ai_score=score, check_score=check)
        with session_scope(pg_url) as session:
            verdict = session.get(Verdict, item.verdict_id)
            assert verdict is not None
            verdict.action = PolicyRule(1, 0.3, 0.7, "hflip", False).decide(score, check)
    body = {"low": 0.2, "high": 0.8, "robustness_check": "hflip"}
    run = client.post("/v1/policy/dry-run", json=body).json()
    # Under 0.2/0.8: 0.05 cleared (same), 0.25 review (was cleared), 0.5 review (same),
    # 0.75 review (was flagged), 0.95 with check 0.2 review (same: the check disagrees).
    assert run["verdicts"] == 5 and run["changed"] == 2 and run["review_queue"] == 4
    assert run["transitions"]["cleared"] == {"cleared": 1, "needs_review": 1}
    assert run["transitions"]["flagged"] == {"needs_review": 1}
    without_check = client.post("/v1/policy/dry-run", json={**body, "robustness_check": "off"})
    assert without_check.json()["by_action_proposed"][Action.FLAGGED] == 1
    with session_scope(pg_url) as session:
        direct = dry_run(session, PolicyDraft(low=0.0, high=1.0))
    assert direct.review_queue == 5
