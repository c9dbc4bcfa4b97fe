"""Outbound events: the relay that delivers the outbox, its targets and webhook signing."""

from workers.outbound.relay import OutboxNotConfigured, RelayStats, relay_once, run_relay
from workers.outbound.signing import signature, verify_signature
from workers.outbound.targets import (
    DeliveryError,
    RedisStreamTarget,
    SqsTarget,
    Target,
    WebhookTarget,
    build_targets,
)

__all__ = [
    "DeliveryError",
    "OutboxNotConfigured",
    "RedisStreamTarget",
    "RelayStats",
    "SqsTarget",
    "Target",
    "WebhookTarget",
    "build_targets",
    "relay_once",
    "run_relay",
    "signature",
    "verify_signature",
]
