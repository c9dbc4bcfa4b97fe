"""Request dependencies: the app's settings, one database session per request, and the
place where authentication will go."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from db.session import get_sessionmaker
from modscan.settings import Settings


def get_app_settings(request: Request) -> Settings:
    """The settings the app was created with (not the process-wide ones: tests differ)."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]


def get_session(settings: SettingsDep) -> Iterator[Session]:
    """One session per request, closed afterwards. Reads need no commit; a route that
    writes commits itself before answering."""
    session = get_sessionmaker(settings.resolved_database_url)()
    try:
        yield session
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_session)]


def authorize(request: Request) -> None:
    """Who is asking. Every /v1 route depends on this; today it lets everyone through.

    API keys with roles (submitter, reviewer, auditor, admin) will be checked here, returning
    the caller's principal for object-level checks in the routes.
    """
    return None


AuthDep = Depends(authorize)
