"""The outbound targets: a signed webhook, an SQS queue and a Redis stream.

Each target sends one event document (the outbox row's JSON, byte for byte) and either
returns, meaning the target has taken it, or raises :class:`DeliveryError`, meaning the
relay should try again later. Clients are built lazily, once per relay process.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
import uuid
from http.client import HTTPException
from typing import Any, Protocol

from db.outbox import ClaimedMessage, Targets
from modscan.settings import Settings
from workers.outbound.signing import signature

__all__ = [
    "DeliveryError",
    "RedisStreamTarget",
    "SqsTarget",
    "Target",
    "WebhookTarget",
    "build_targets",
]


class DeliveryError(Exception):
    """The target did not take the event; the relay records why and tries again later."""


class Target(Protocol):
    name: str

    def deliver(self, message: ClaimedMessage) -> None: ...

    def close(self) -> None: ...


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirected POST would arrive as a bodiless GET: treat a 3xx as a failure instead."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class WebhookTarget:
    """POST the event with ``X-Modscan-*`` headers; any 2xx answer is a delivery."""

    name = Targets.WEBHOOK

    def __init__(self, url: str, secret: str, *, timeout_s: float = 10.0) -> None:
        self.url = url
        self._secret = secret
        self.timeout_s = timeout_s
        self._opener = urllib.request.build_opener(_NoRedirects())

    def headers(self, message: ClaimedMessage, *, timestamp: int | None = None) -> dict[str, str]:
        sent_at = str(int(time.time()) if timestamp is None else timestamp)
        return {
            "Content-Type": "application/json",
            "User-Agent": "modscan-outbox/1",
            "X-Modscan-Event-Id": message.event_id,
            "X-Modscan-Topic": message.topic,
            "X-Modscan-Delivery-Id": str(uuid.uuid4()),  # new on every attempt
            "X-Modscan-Timestamp": sent_at,
            "X-Modscan-Signature": signature(self._secret, sent_at, message.body),
        }

    def deliver(self, message: ClaimedMessage) -> None:
        request = urllib.request.Request(
            self.url,
            data=message.body.encode("utf-8"),
            headers=self.headers(message),
            method="POST",
        )
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                response.read(65536)
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            exc.close()
            raise DeliveryError(f"webhook answered HTTP {exc.code}") from exc
        except urllib.error.URLError as exc:
            raise DeliveryError(f"webhook unreachable: {exc.reason}") from exc
        except (OSError, HTTPException) as exc:  # timeouts, resets, garbled answers
            raise DeliveryError(f"webhook failed: {type(exc).__name__}: {exc}") from exc
        if not 200 <= status < 300:
            raise DeliveryError(f"webhook answered HTTP {status}")

    def close(self) -> None:
        pass


class SqsTarget:
    """``SendMessage`` with ``event_id`` and ``topic`` attributes. A FIFO queue (``.fifo``)
    also gets the event id as deduplication id and as message group (no ordering is
    promised, so no event waits behind another's group)."""

    name = Targets.SQS

    def __init__(self, client: Any, queue_url: str) -> None:
        self._client = client
        self.queue_url = queue_url
        self.fifo = queue_url.endswith(".fifo")

    @classmethod
    def from_settings(cls, settings: Settings) -> SqsTarget:
        import boto3
        from botocore.config import Config

        assert settings.outbox_sqs_queue_url
        client = boto3.session.Session().client(
            "sqs",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.aws_region,
            # Short timeouts: one stuck call must not outlive the relay's lease.
            config=Config(
                connect_timeout=5,
                read_timeout=10,
                retries={"mode": "standard", "total_max_attempts": 3},
            ),
        )
        return cls(client, settings.outbox_sqs_queue_url)

    def deliver(self, message: ClaimedMessage) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        request: dict[str, Any] = {
            "QueueUrl": self.queue_url,
            "MessageBody": message.body,
            "MessageAttributes": {
                "event_id": {"DataType": "String", "StringValue": message.event_id},
                "topic": {"DataType": "String", "StringValue": message.topic},
            },
        }
        if self.fifo:
            request["MessageDeduplicationId"] = message.event_id
            request["MessageGroupId"] = message.event_id
        try:
            self._client.send_message(**request)
        except (BotoCoreError, ClientError) as exc:
            raise DeliveryError(f"sqs send_message failed: {exc}") from exc

    def close(self) -> None:
        self._client.close()


class RedisStreamTarget:
    """``XADD <stream> MAXLEN ~ N * event_id <id> topic <topic> body <json>``."""

    name = Targets.REDIS

    def __init__(self, client: Any, stream: str, *, maxlen: int) -> None:
        self._client = client
        self.stream = stream
        self.maxlen = maxlen

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisStreamTarget:
        import redis

        assert settings.outbox_redis_url
        client = redis.Redis.from_url(
            settings.outbox_redis_url, socket_connect_timeout=5, socket_timeout=10
        )
        return cls(client, settings.outbox_redis_stream, maxlen=settings.outbox_redis_maxlen)

    def deliver(self, message: ClaimedMessage) -> None:
        import redis

        fields = {"event_id": message.event_id, "topic": message.topic, "body": message.body}
        try:
            self._client.xadd(self.stream, fields, maxlen=self.maxlen, approximate=True)
        except redis.RedisError as exc:
            raise DeliveryError(f"redis xadd failed: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        self._client.close()


def build_targets(settings: Settings) -> dict[str, Target]:
    """The targets ``settings.outbox_targets`` names, keyed by name."""
    targets: dict[str, Target] = {}
    for name in settings.outbox_targets:
        if name == Targets.WEBHOOK:
            assert settings.outbox_webhook_url and settings.outbox_webhook_secret
            targets[name] = WebhookTarget(
                settings.outbox_webhook_url,
                settings.outbox_webhook_secret,
                timeout_s=settings.outbox_webhook_timeout_s,
            )
        elif name == Targets.SQS:
            targets[name] = SqsTarget.from_settings(settings)
        elif name == Targets.REDIS:
            targets[name] = RedisStreamTarget.from_settings(settings)
    return targets
