"""The Celery application: one config for every worker and for the API's enqueueing."""

from __future__ import annotations

from functools import lru_cache

from celery import Celery
from kombu.entity import Exchange, Queue

from modscan.settings import Settings, get_settings

LISTING_QUEUE = "listing"
INFERENCE_QUEUE = "inference"
NOTIFICATIONS_QUEUE = "notifications"

# Every task's name, spelled once: the tasks, the routes, the beat schedule and the
# producers (workers.dispatch, the outbox relay task) all read these.
LIST_TASK = "modscan.list_source"
CLASSIFY_TASK = "modscan.classify"
RELAY_TASK = "modscan.outbox.relay"


def _queue(name: str) -> Queue:
    return Queue(name, Exchange(name, type="direct"), routing_key=name)


def create_celery(settings: Settings) -> Celery:
    app = Celery(
        "modscan",
        broker=settings.broker_url or "memory://",
        include=["workers.tasks", "workers.outbound.tasks"],
    )
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=INFERENCE_QUEUE,
        task_queues=[_queue(LISTING_QUEUE), _queue(INFERENCE_QUEUE), _queue(NOTIFICATIONS_QUEUE)],
        task_routes={
            LIST_TASK: {"queue": LISTING_QUEUE},
            CLASSIFY_TASK: {"queue": INFERENCE_QUEUE},
            RELAY_TASK: {"queue": NOTIFICATIONS_QUEUE},
        },
        # Only read by `celery beat`, for deployments that relay the outbox from Celery
        # rather than with `modscan relay`; an expired send is dropped, never piled up.
        beat_schedule={
            "outbox-relay": {
                "task": RELAY_TASK,
                "schedule": 10.0,
                "options": {"queue": NOTIFICATIONS_QUEUE, "expires": 10.0},
            }
        },
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=5,
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout_s,
            "socket_connect_timeout": 5,
            # Look for tasks a dead worker left unacked often enough that a short
            # visibility timeout really brings them back soon (kombu sweeps every ~100 s).
            "unacked_restore_interval": max(1, min(60, settings.visibility_timeout_s // 10)),
            "unacked_restore_throttle": 1,
        },
        task_publish_retry_policy={
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": 0.5,
            "interval_max": 1,
        },
    )
    return app


@lru_cache(maxsize=4)
def app_for(broker_url: str) -> Celery:
    """A producer-side app for a given broker (the API and CLI may hold other settings)."""
    return create_celery(Settings(broker_url=broker_url))


app = create_celery(get_settings())
