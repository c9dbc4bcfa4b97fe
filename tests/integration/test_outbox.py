"""The relay against real targets: an HTTP receiver, moto's SQS and Redis, on PostgreSQL.

Every event written in a committed transaction reaches every target with a valid signature;
a failing target is retried with backoff; a rolled-back transaction sends nothing; and a
relay killed with SIGKILL mid-delivery loses nothing: a fresh relay delivers the rest.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis
from sqlalchemy import select

from db.models import OutboxMessage
from db.outbox import add_event, outbox_status
from db.session import session_scope
from modscan.settings import Settings
from tests.support.receiver import WebhookReceiver, webhook_receiver
from tests.support.services import ROOT
from workers.outbound.relay import relay_once
from workers.outbound.signing import verify_signature
from workers.outbound.targets import build_targets

pytestmark = pytest.mark.integration

SECRET = "whsec-outbox-tests"


@dataclass
class Targets:
    receiver: WebhookReceiver
    sqs: Any
    queue_url: str
    redis: Any  # redis.Redis; its stubs type replies as bytes | str
    stream: str
    env: dict[str, str]

    def settings(self, **overrides: Any) -> Settings:
        values = {key[len("MODSCAN_") :].lower(): value for key, value in self.env.items()}
        return Settings(**{**values, **overrides})


@pytest.fixture
def targets(pg_url: str, redis_url: str, moto_endpoint: str) -> Iterator[Targets]:
    """The three targets; the stream is on this test's own Redis database (`redis_url`)."""
    sqs = boto3.client("sqs", endpoint_url=moto_endpoint, region_name="us-east-1")
    queue_url = sqs.create_queue(QueueName=f"outbox-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    stream = f"modscan:events:{uuid.uuid4().hex[:8]}"
    with webhook_receiver() as receiver:
        env = {
            "MODSCAN_DATABASE_URL": pg_url,
            "MODSCAN_S3_ENDPOINT_URL": moto_endpoint,
            "MODSCAN_OUTBOX_WEBHOOK_URL": receiver.url,
            "MODSCAN_OUTBOX_WEBHOOK_SECRET": SECRET,
            "MODSCAN_OUTBOX_SQS_QUEUE_URL": queue_url,
            "MODSCAN_OUTBOX_REDIS_URL": redis_url,
            "MODSCAN_OUTBOX_REDIS_STREAM": stream,
            # Short enough for a test that waits on them.
            "MODSCAN_OUTBOX_BACKOFF_S": "0.2",
            "MODSCAN_OUTBOX_BACKOFF_MAX_S": "1",
            "MODSCAN_OUTBOX_POLL_S": "0.1",
        }
        client = redis.Redis.from_url(redis_url)
        try:
            yield Targets(receiver, sqs, queue_url, client, stream, env)
        finally:
            client.delete(stream)
            client.close()


def write_events(url: str, count: int, targets: list[str], topic: str = "verdict.flagged"):
    """Events in one committed transaction, as the verdict writer adds them."""
    with session_scope(url) as session:
        return [
            add_event(session, targets=targets, topic=topic, payload={"verdict_id": number})
            for number in range(count)
        ]


def sqs_messages(targets: Targets) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    empty = 0
    while empty < 2:
        got = targets.sqs.receive_message(
            QueueUrl=targets.queue_url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            AttributeNames=["All"],
            VisibilityTimeout=300,
            WaitTimeSeconds=0,
        ).get("Messages", [])
        empty = 0 if got else empty + 1
        messages.extend(got)
    return messages


def stream_entries(targets: Targets) -> list[dict[str, str]]:
    return [
        {key.decode(): value.decode() for key, value in fields.items()}
        for _, fields in targets.redis.xrange(targets.stream)
    ]


def assert_webhook_deliveries_valid(receiver: WebhookReceiver) -> set[str]:
    """Every accepted delivery is signed and names the event its body carries."""
    for delivery in receiver.accepted:
        headers = delivery.headers
        assert verify_signature(
            SECRET, headers["x-modscan-timestamp"], delivery.body, headers["x-modscan-signature"]
        )
        document = json.loads(delivery.body)
        assert headers["x-modscan-event-id"] == document["event_id"]
        assert headers["x-modscan-topic"] == document["topic"]
        assert headers["content-type"] == "application/json"
    delivery_ids = [delivery.headers["x-modscan-delivery-id"] for delivery in receiver.accepted]
    assert len(set(delivery_ids)) == len(delivery_ids)
    return set(receiver.event_ids())


def sqs_event_ids(targets: Targets) -> set[str]:
    ids = set()
    for message in sqs_messages(targets):
        document = json.loads(message["Body"])
        attributes = message["MessageAttributes"]
        assert attributes["event_id"]["StringValue"] == document["event_id"]
        assert attributes["topic"]["StringValue"] == document["topic"]
        ids.add(document["event_id"])
    return ids


def stream_event_ids(targets: Targets) -> set[str]:
    ids = set()
    for entry in stream_entries(targets):
        document = json.loads(entry["body"])
        assert entry["event_id"] == document["event_id"]
        assert entry["topic"] == document["topic"]
        ids.add(document["event_id"])
    return ids


def test_every_event_reaches_every_target(pg_url: str, targets: Targets) -> None:
    written = write_events(pg_url, 25, ["webhook", "sqs", "redis"])
    settings = targets.settings()

    stats = relay_once(settings, limit=100)

    assert (stats.claimed, stats.delivered, stats.failed) == (75, 75, 0)
    assert len(targets.receiver.accepted) == 25
    assert assert_webhook_deliveries_valid(targets.receiver) == set(written)
    assert sqs_event_ids(targets) == set(written)
    assert stream_event_ids(targets) == set(written)
    # The same document, byte for byte, on every target.
    first = next(
        d for d in targets.receiver.accepted if d.headers["x-modscan-event-id"] == written[0]
    )
    entry = next(e for e in stream_entries(targets) if e["event_id"] == written[0])
    assert first.body.decode() == entry["body"]
    assert json.loads(entry["body"])["data"] == {"verdict_id": 0}
    with session_scope(pg_url) as session:
        status = outbox_status(session, max_attempts=settings.outbox_max_attempts)
    assert [(row.target, row.delivered, row.pending) for row in status] == [
        ("redis", 25, 0),
        ("sqs", 25, 0),
        ("webhook", 25, 0),
    ]
    assert relay_once(settings).claimed == 0  # nothing is sent twice by a healthy relay


def test_failing_webhook_is_retried_with_backoff(pg_url: str, targets: Targets) -> None:
    written = write_events(pg_url, 2, ["webhook", "sqs", "redis"])
    # Retries after 1.5 to 3 s: long enough for the rounds below, on a busy machine too.
    settings = targets.settings(outbox_backoff_s=3, outbox_backoff_max_s=3)
    clients = build_targets(settings)
    targets.receiver.fail_next = 1000  # the receiver answers 500 until told otherwise

    first = relay_once(settings, targets=clients)
    failed_at = time.monotonic()
    # The first webhook try fails; the round hands the other webhook event back untried.
    assert (first.delivered, first.failed, first.released) == (4, 1, 1)
    second = relay_once(settings, targets=clients)  # only the handed-back event is due
    assert (second.claimed, second.failed) == (1, 1)
    assert relay_once(settings, targets=clients).claimed == 0  # both are backing off
    assert len(targets.receiver.refused) == 2 and targets.receiver.accepted == []
    with session_scope(pg_url) as session:
        webhook_rows = session.scalars(
            select(OutboxMessage).where(OutboxMessage.target == "webhook")
        ).all()
        assert {row.last_error for row in webhook_rows} == {"webhook answered HTTP 500"}
        (status,) = [
            row for row in outbox_status(session, max_attempts=20) if row.target == "webhook"
        ]
        assert status.failing == 2 and status.delivered == 0

    targets.receiver.fail_next = 0  # the receiver recovers
    deadline = time.monotonic() + 20
    while len(targets.receiver.accepted) < 2 and time.monotonic() < deadline:
        relay_once(settings, targets=clients)
        time.sleep(0.05)
    assert time.monotonic() - failed_at >= 1.5  # no sooner than the backoff allows
    assert assert_webhook_deliveries_valid(targets.receiver) == set(written)
    assert sqs_event_ids(targets) == set(written)
    assert stream_event_ids(targets) == set(written)
    with session_scope(pg_url) as session:
        webhook_rows = session.scalars(
            select(OutboxMessage).where(OutboxMessage.target == "webhook")
        ).all()
        assert all(row.delivered_at is not None for row in webhook_rows)
        assert all(row.attempts == 2 and row.last_error is None for row in webhook_rows)


def test_target_given_up_after_max_attempts(pg_url: str, targets: Targets) -> None:
    (event_id,) = write_events(pg_url, 1, ["webhook"])
    settings = targets.settings(outbox_max_attempts=3)
    targets.receiver.fail_next = 1000

    deadline = time.monotonic() + 20
    while len(targets.receiver.refused) < 3 and time.monotonic() < deadline:
        relay_once(settings)
        time.sleep(0.05)
    time.sleep(1.2)  # past any backoff
    assert relay_once(settings).claimed == 0
    assert len(targets.receiver.refused) == 3
    with session_scope(pg_url) as session:
        (row,) = session.scalars(select(OutboxMessage)).all()
        assert row.event_id == event_id and row.delivered_at is None and row.attempts == 3
        assert row.last_error == "webhook answered HTTP 500"  # kept for inspection
        (status,) = outbox_status(session, max_attempts=3)
        assert (status.failed, status.failing, status.pending) == (1, 0, 0)


def test_rolled_back_transaction_sends_nothing(pg_url: str, targets: Targets) -> None:
    with pytest.raises(RuntimeError), session_scope(pg_url) as session:
        add_event(session, targets=["webhook", "sqs", "redis"], topic="verdict.flagged", payload={})
        raise RuntimeError("the verdict write failed")
    settings = targets.settings()
    assert relay_once(settings).claimed == 0
    (kept,) = write_events(pg_url, 1, ["webhook", "sqs", "redis"], topic="review.decided")
    assert relay_once(settings).delivered == 3
    assert targets.receiver.event_ids() == [kept]
    assert sqs_event_ids(targets) == {kept} and stream_event_ids(targets) == {kept}


def test_fifo_queue_is_deduplicated_by_event_id(pg_url: str, targets: Targets) -> None:
    fifo_url = targets.sqs.create_queue(
        QueueName=f"outbox-{uuid.uuid4().hex[:8]}.fifo", Attributes={"FifoQueue": "true"}
    )["QueueUrl"]
    written = write_events(pg_url, 3, ["sqs"])
    assert relay_once(targets.settings(outbox_sqs_queue_url=fifo_url)).delivered == 3
    targets.queue_url = fifo_url
    messages = sqs_messages(targets)
    assert {message["MessageAttributes"]["event_id"]["StringValue"] for message in messages} == set(
        written
    )
    for message in messages:
        event_id = message["MessageAttributes"]["event_id"]["StringValue"]
        assert message["Attributes"]["MessageDeduplicationId"] == event_id
        assert message["Attributes"]["MessageGroupId"] == event_id


def start_relay(targets: Targets, log_path: Path) -> subprocess.Popen[bytes]:
    """``modscan relay`` in a process of its own, with a 2 s lease so that what a killed
    relay had claimed comes back quickly."""
    return subprocess.Popen(
        [sys.executable, "-m", "modscan.cli", "-v", "relay", "--limit", "12"],
        env={**os.environ, **targets.env, "MODSCAN_OUTBOX_LEASE_S": "2"},
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        start_new_session=True,
    )


# SIGTERM lets the delivery in hand finish; its worst case is the SQS client's three tries
# of a 5 s connect and a 10 s read.
GRACEFUL_STOP_S = 60


def stop_gracefully(relay: subprocess.Popen[bytes], log_path: Path) -> None:
    """SIGTERM, then wait; a relay that does not stop is killed and the test fails with its
    log (rather than a bare TimeoutExpired that hides what it was doing)."""
    os.killpg(relay.pid, signal.SIGTERM)
    try:
        relay.wait(timeout=GRACEFUL_STOP_S)
    except subprocess.TimeoutExpired:
        os.killpg(relay.pid, signal.SIGKILL)
        relay.wait(timeout=30)
        raise AssertionError(
            f"relay ignored SIGTERM for {GRACEFUL_STOP_S}s; log:\n{log_path.read_text()[-4000:]}"
        ) from None


def undelivered(url: str) -> int:
    with session_scope(url) as session:
        return sum(
            row.pending + row.failing + row.failed
            for row in outbox_status(session, max_attempts=20)
        )


@pytest.mark.slow
def test_relay_killed_mid_delivery_loses_nothing(
    pg_url: str, targets: Targets, tmp_path: Path
) -> None:
    written = write_events(pg_url, 20, ["webhook", "sqs", "redis"])
    log_path = tmp_path / "relay.log"
    receiver = targets.receiver
    receiver.block_on = 5  # hang on the fifth webhook delivery, and lose it

    relay = start_relay(targets, log_path)
    try:
        assert receiver.blocked.wait(60), log_path.read_text()
        os.killpg(relay.pid, signal.SIGKILL)  # mid-delivery
        relay.wait(timeout=30)
    finally:
        if relay.poll() is None:
            os.killpg(relay.pid, signal.SIGKILL)
            relay.wait(timeout=30)
    receiver.unblock.set()
    assert relay.returncode == -signal.SIGKILL
    assert 0 < undelivered(pg_url) < 60  # killed part way through
    assert len(receiver.accepted) == 4

    fresh = start_relay(targets, log_path)
    try:
        deadline = time.monotonic() + 60
        while undelivered(pg_url) and time.monotonic() < deadline:
            assert fresh.poll() is None, log_path.read_text()
            time.sleep(0.2)
        assert undelivered(pg_url) == 0, log_path.read_text()
    finally:
        stop_gracefully(fresh, log_path)
    assert fresh.returncode == 0, log_path.read_text()

    # At least once everywhere: duplicates are allowed, losses are not.
    assert assert_webhook_deliveries_valid(receiver) == set(written)
    assert sqs_event_ids(targets) == set(written)
    assert stream_event_ids(targets) == set(written)
    with session_scope(pg_url) as session:
        retried = session.scalars(select(OutboxMessage).where(OutboxMessage.attempts > 1)).all()
    # The event whose delivery was lost was tried again, and so was its leased batch.
    assert any(row.target == "webhook" for row in retried)


def test_celery_task_and_cli_relay(
    pg_url: str, targets: Targets, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from modscan.cli import main
    from modscan.settings import get_settings
    from workers.celery_app import NOTIFICATIONS_QUEUE, RELAY_TASK, app
    from workers.outbound.tasks import relay_outbox

    for key, value in targets.env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    try:
        app.loader.import_default_modules()
        assert RELAY_TASK in app.tasks
        assert app.amqp.router.route({}, RELAY_TASK)["queue"].name == NOTIFICATIONS_QUEUE
        assert relay_outbox.acks_late and relay_outbox.ignore_result

        by_task = write_events(pg_url, 2, ["webhook", "sqs", "redis"])
        relay_outbox()  # what a worker runs: delivers what is due, then returns
        assert set(targets.receiver.event_ids()) == set(by_task)

        by_cli = write_events(pg_url, 3, ["webhook", "sqs", "redis"], topic="review.decided")
        result = CliRunner().invoke(main, ["relay", "--once"])
        assert result.exit_code == 0, result.output
        assert "9 delivered, 0 failed" in result.output
        status = CliRunner().invoke(main, ["relay", "--status"])
        assert status.exit_code == 0, status.output
        assert status.output.split("\n")[1].split() == ["redis", "0", "0", "0", "5"]
    finally:
        get_settings.cache_clear()
    assert assert_webhook_deliveries_valid(targets.receiver) == set(by_task + by_cli)
    assert sqs_event_ids(targets) == set(by_task + by_cli)
    assert stream_event_ids(targets) == set(by_task + by_cli)
