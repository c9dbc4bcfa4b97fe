"""Request dependencies: the app's settings, one database session per request, and who
is asking (an API key with a role) checked against what each route allows."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from api.errors import ApiError
from api.ratelimit import check_rate
from db.keys import authenticate, touch
from db.models import Role
from db.session import get_sessionmaker
from modscan.settings import Settings

# The review page keeps the key in this cookie (HttpOnly, SameSite=Strict).
SESSION_COOKIE = "modscan_key"
# A cookie-authenticated request that changes state must carry this header: browsers do not
# send custom headers cross-site without a CORS preflight, which this API never grants.
CSRF_HEADER = "X-Modscan-Csrf"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


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


@dataclass(frozen=True)
class Principal:
    """The caller: which key, with which role."""

    key_id: str
    role: str
    name: str

    @property
    def actor(self) -> str:
        """How the audit trail names this caller."""
        return f"key:{self.key_id}"

    @property
    def sees_everything(self) -> bool:
        return self.role in (Role.AUDITOR, Role.ADMIN)

    @property
    def owner_filter(self) -> str | None:
        """For submitters, the created_by value their scans carry; None: no restriction."""
        return None if self.sees_everything else self.actor


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def _token(request: Request) -> tuple[str | None, bool]:
    """The presented token, and whether it came from the session cookie."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise _unauthorized("Authorization must be 'Bearer <api key>'")
        return value.strip(), False
    api_key = request.headers.get("x-api-key")
    if api_key:
        return api_key.strip(), False
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return cookie, True
    return None, False


def get_principal(request: Request, session: SessionDep, settings: SettingsDep) -> Principal:
    """Authenticate the request's API key; 401 without a valid one, 429 over the limit."""
    token, from_cookie = _token(request)
    if token is None:
        raise _unauthorized("an API key is required: 'Authorization: Bearer <key>'")
    key = authenticate(session, token)
    if key is None:
        raise _unauthorized("the API key is unknown or revoked")
    if from_cookie and request.method not in _SAFE_METHODS and not request.headers.get(CSRF_HEADER):
        raise ApiError(403, "csrf", f"cookie-authenticated writes need the {CSRF_HEADER} header")
    retry_after = check_rate(settings, key.key_id)
    if retry_after is not None:
        raise ApiError(
            429,
            "rate_limited",
            f"more than {settings.api_rate_limit_per_minute} requests a minute for this key",
            headers={"Retry-After": str(retry_after)},
        )
    if touch(session, key):
        session.commit()  # the request's session: a route that only reads keeps this write
    return Principal(key_id=key.key_id, role=key.role, name=key.name)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require(*roles: str) -> Callable[[Principal], Principal]:
    """A dependency that lets only these roles through (admin always); 403 otherwise."""
    allowed = frozenset((*roles, Role.ADMIN))

    def check(principal: PrincipalDep) -> Principal:
        if principal.role not in allowed:
            raise ApiError(
                403,
                "forbidden",
                f"role {principal.role!r} may not do this; allowed: {', '.join(sorted(allowed))}",
            )
        return principal

    return check


Submitter = Annotated[Principal, Depends(require(Role.SUBMITTER))]
Reader = Annotated[Principal, Depends(require(Role.SUBMITTER, Role.AUDITOR))]
Auditor = Annotated[Principal, Depends(require(Role.AUDITOR))]
Reviewer = Annotated[Principal, Depends(require(Role.REVIEWER))]
ReviewReader = Annotated[Principal, Depends(require(Role.REVIEWER, Role.AUDITOR))]
Admin = Annotated[Principal, Depends(require())]
AnyRole = Annotated[Principal, Depends(require(*Role.ALL))]
