"""The review page: a server-rendered HTML page over the review queue.

``/review`` leases the signed-in reviewer the next item and shows it; its script posts the
decision to ``/v1/review/{verdict_id}`` (with the CSRF header) and reloads for the next one.
``/review/login`` trades an API key for an HttpOnly, SameSite=Strict cookie. Templates are
rendered by Jinja2 with autoescaping on; the page loads nothing from elsewhere and its
Content-Security-Policy allows only its own nonce-tagged script and style.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from api.deps import CSRF_HEADER, SESSION_COOKIE, SessionDep, SettingsDep, get_principal
from api.errors import ApiError
from api.reviewing import claimable_states, scores_hidden
from db.keys import authenticate
from db.models import Role, as_utc
from db.review_queue import queue_entry, remaining
from db.reviews import claim_next

router = APIRouter(tags=["review page"], include_in_schema=False)

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parent.parent / "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_COOKIE_MAX_AGE_S = 12 * 3600
_MAX_FORM_BYTES = 4096
_REVIEW_ROLES = (Role.REVIEWER, Role.ADMIN)


def _render(name: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    body = _templates.get_template(name).render(nonce=nonce, **context)
    policy = (
        f"default-src 'none'; img-src 'self'; style-src 'nonce-{nonce}'; "
        f"script-src 'nonce-{nonce}'; connect-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
    return HTMLResponse(
        body,
        status_code=status_code,
        headers={
            "Content-Security-Policy": policy,
            "Cache-Control": "no-store",
            # same-origin, not no-referrer: with no-referrer the browser sends "Origin: null"
            # on the login form post, which the origin check must refuse.
            "Referrer-Policy": "same-origin",
            "X-Content-Type-Options": "nosniff",
        },
    )


def _login_page(message: str | None = None, *, status_code: int = 200) -> HTMLResponse:
    return _render("review_login.html", message=message, status_code=status_code)


def _check_origin(request: Request) -> None:
    """Refuse form posts from other sites (login CSRF); a missing Origin is allowed."""
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        raise ApiError(403, "forbidden", "cross-site form posts are refused")


async def _form(request: Request) -> dict[str, str]:
    """A small url-encoded form body (the login form); first value of each field."""
    content_type = request.headers.get("content-type", "").partition(";")[0].strip()
    if content_type != "application/x-www-form-urlencoded":
        raise ApiError(415, "unsupported_media_type", "send the form url-encoded")
    body = await request.body()
    if len(body) > _MAX_FORM_BYTES:
        raise ApiError(413, "payload_too_large", "the form is too large")
    fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=8)
    return {name: values[0] for name, values in fields.items()}


FormDep = Annotated[dict[str, str], Depends(_form)]


@router.get("/review", response_class=HTMLResponse)
def review_page(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    try:
        principal = get_principal(request, session, settings)
    except ApiError as exc:
        if exc.status_code != 401:
            raise
        redirect = RedirectResponse("/review/login", status_code=303)
        redirect.delete_cookie(SESSION_COOKIE, path="/")
        return redirect
    if principal.role not in _REVIEW_ROLES:
        return _login_page(
            f"the key {principal.name!r} has the role {principal.role}, which cannot review",
            status_code=403,
        )
    states = claimable_states(principal)
    review = claim_next(
        session, actor=principal.actor, lease_s=settings.review_lease_s, states=states
    )
    session.commit()
    entry = queue_entry(session, verdict_id=review.verdict_id) if review is not None else None
    counts = remaining(session)
    expires = as_utc(entry.review.claim_expires_at) if entry is not None else None
    return _render(
        "review.html",
        principal=principal,
        entry=entry,
        blind=scores_hidden(session, principal),
        left=sum(counts[state] for state in states),
        lease_until=expires.strftime("%H:%M:%S UTC") if expires is not None else "",
        csrf_header=CSRF_HEADER,
    )


@router.get("/review/login", response_class=HTMLResponse)
def login_page() -> HTMLResponse:
    return _login_page()


@router.post("/review/login", response_class=HTMLResponse)
def login(request: Request, session: SessionDep, form: FormDep) -> Response:
    _check_origin(request)
    token = form.get("key", "").strip()
    key = authenticate(session, token) if token else None
    if key is None:
        return _login_page("that key is unknown or revoked", status_code=401)
    if key.role not in _REVIEW_ROLES:
        return _login_page(
            f"the key {key.name!r} has the role {key.role}; reviewing needs reviewer or admin",
            status_code=403,
        )
    redirect = RedirectResponse("/review", status_code=303)
    redirect.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=_COOKIE_MAX_AGE_S,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return redirect


@router.api_route("/review/logout", methods=["GET", "POST"])
def logout() -> Response:
    redirect = RedirectResponse("/review/login", status_code=303)
    redirect.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return redirect
