"""Health probes: whether the database and the broker answer, and if not, why."""

from __future__ import annotations

from sqlalchemy import text

from db.session import get_engine
from modscan.settings import Settings


def _short(exc: BaseException) -> str:
    text_ = str(exc).strip().splitlines()
    detail = text_[0] if text_ else ""
    name = type(exc).__name__
    return f"{name}: {detail[:200]}" if detail else name


def check_database(settings: Settings) -> str:
    try:
        with get_engine(settings.resolved_database_url).connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means "not ok"; say which
        return f"unavailable: {_short(exc)}"
    return "ok"


def check_broker(settings: Settings, timeout_s: float = 2.0) -> str:
    url = settings.broker_url
    if not url:
        return "embedded"
    scheme = url.partition("://")[0].lower()
    if scheme not in ("redis", "rediss"):
        return f"unchecked ({scheme} broker)"
    import redis

    try:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s
        )
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # connection refused, auth, bad URL: all "not ok"
        return f"unavailable: {_short(exc)}"
    return "ok"
