"""Webhook signing and verification, the copy of the check in docs/moderation.md, and the
settings that turn targets on."""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from db.outbox import ClaimedMessage, retry_delay
from modscan.settings import Settings
from workers.outbound.signing import signature, verify_signature
from workers.outbound.targets import WebhookTarget

SECRET = "whsec-test"
BODY = b'{"data":{"verdict_id":7},"event_id":"e-1","topic":"verdict.flagged"}'
NOW = 1_700_000_000
SNIPPET_DOC = Path(__file__).resolve().parents[2] / "docs" / "moderation.md"


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert signature(SECRET, str(NOW), BODY) == f"v1={expected}"
    assert signature(SECRET, NOW, BODY.decode()) == f"v1={expected}"


def test_valid_signature_is_accepted() -> None:
    header = signature(SECRET, str(NOW), BODY)
    assert verify_signature(SECRET, str(NOW), BODY, header, now=NOW)
    assert verify_signature(SECRET, str(NOW), BODY, header, now=NOW + 299)
    # One of several signatures (a secret being rotated) is enough.
    assert verify_signature(SECRET, str(NOW), BODY, f"v1=00ff, {header}", now=NOW)


@pytest.mark.parametrize(
    "change",
    ["tampered body", "stale timestamp", "future timestamp", "wrong secret", "moved timestamp"],
)
def test_bad_deliveries_are_rejected(change: str) -> None:
    header = signature(SECRET, str(NOW), BODY)
    secret, timestamp, body, now = SECRET, str(NOW), BODY, float(NOW)
    if change == "tampered body":
        body = BODY.replace(b"7", b"8")
    elif change == "stale timestamp":
        now = NOW + 301
    elif change == "future timestamp":
        now = NOW - 301
    elif change == "wrong secret":
        secret = "whsec-other"
    elif change == "moved timestamp":  # a replayed body with a fresh timestamp
        timestamp = str(NOW + 60)
        now = NOW + 60
    assert not verify_signature(secret, timestamp, body, header, now=now)


@pytest.mark.parametrize("header", ["", "v1=", "garbage", "v0=" + "0" * 64])
def test_malformed_headers_are_rejected(header: str) -> None:
    assert not verify_signature(SECRET, str(NOW), BODY, header, now=NOW)


def test_non_numeric_timestamp_is_rejected() -> None:
    header = signature(SECRET, "soon", BODY)
    assert not verify_signature(SECRET, "soon", BODY, header, now=NOW)


def _readme_verifier() -> Any:
    text = SNIPPET_DOC.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    source = next(block for block in blocks if "def verify_modscan_signature" in block)
    namespace: dict[str, Any] = {}
    exec(compile(source, "docs/moderation.md", "exec"), namespace)
    return namespace["verify_modscan_signature"]


def test_readme_snippet_verifies_what_the_relay_signs() -> None:
    verify = _readme_verifier()
    message = ClaimedMessage(
        id=1,
        event_id="e-1",
        target="webhook",
        topic="verdict.flagged",
        body=BODY.decode(),
        attempt=1,
    )
    headers = WebhookTarget("http://127.0.0.1:9/", SECRET).headers(message)
    timestamp, header = headers["X-Modscan-Timestamp"], headers["X-Modscan-Signature"]
    assert verify(SECRET, timestamp, BODY, header)
    assert not verify(SECRET, timestamp, BODY + b" ", header)
    assert not verify("whsec-other", timestamp, BODY, header)
    assert not verify(SECRET, str(int(timestamp) - 600), BODY, header)


def test_webhook_headers() -> None:
    message = ClaimedMessage(
        id=1, event_id="e-1", target="webhook", topic="review.decided", body="{}", attempt=3
    )
    target = WebhookTarget("http://127.0.0.1:9/", SECRET)
    first, second = target.headers(message, timestamp=NOW), target.headers(message, timestamp=NOW)
    assert first["X-Modscan-Event-Id"] == "e-1"
    assert first["X-Modscan-Topic"] == "review.decided"
    assert first["X-Modscan-Timestamp"] == str(NOW)
    assert first["X-Modscan-Delivery-Id"] != second["X-Modscan-Delivery-Id"]
    assert verify_signature(SECRET, str(NOW), "{}", first["X-Modscan-Signature"], now=NOW)


def test_webhook_without_secret_is_a_configuration_error() -> None:
    with pytest.raises(ValidationError, match="WEBHOOK_SECRET"):
        Settings(outbox_webhook_url="https://hooks.example.com/modscan")


def test_outbox_targets_lists_what_is_configured() -> None:
    assert Settings().outbox_targets == []
    assert Settings(outbox_webhook_secret="s").outbox_targets == []
    configured = Settings(
        outbox_webhook_url="https://hooks.example.com/modscan",
        outbox_webhook_secret="s",
        outbox_sqs_queue_url="https://sqs.us-east-1.amazonaws.com/1/events",
        outbox_redis_url="redis://127.0.0.1:6379/0",
    )
    assert configured.outbox_targets == ["webhook", "sqs", "redis"]
    assert Settings(outbox_redis_url="redis://x:6379/0").outbox_targets == ["redis"]


def test_retry_delay_doubles_with_jitter_and_is_capped() -> None:
    for attempt, nominal in [(1, 10.0), (2, 20.0), (4, 80.0)]:
        delays = [retry_delay(attempt, base_s=10, max_s=3600) for _ in range(200)]
        assert all(nominal / 2 <= delay <= nominal for delay in delays)
        assert len(set(delays)) > 1  # jittered
    assert all(1800 <= retry_delay(60, base_s=10, max_s=3600) <= 3600 for _ in range(50))
