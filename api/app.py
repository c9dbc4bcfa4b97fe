"""The HTTP API: ``create_app(settings)``, and ``app`` for ``uvicorn api.app:app``.

Creating the app touches nothing; starting it (the lifespan) checks that the database is
at the latest migration and refuses to serve otherwise.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from api.errors import install_error_handlers
from api.routes import (
    audit,
    health,
    images,
    ingest,
    keys,
    policy,
    review,
    review_page,
    scans,
    verdicts,
)
from modscan.settings import Settings, get_settings

DESCRIPTION = """\
Batch moderation that tells AI-generated images from real ones.

Start a scan of an S3 prefix, follow it, then read verdicts: each is one model version's
`ai_score` (P(AI-generated)) and `label` for one image, identified by the sha256 of its bytes.

Every error is JSON: `{"error": {"code": "...", "message": "..."}}`.
Lists are paged with an opaque `cursor`; page sizes above the server's cap are refused (422).
"""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("modscan")
    except PackageNotFoundError:
        return "0.1.0"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        from db.migrate import ensure_migrated

        # Raises DatabaseNotMigrated on a configured database that is behind: uvicorn exits.
        ensure_migrated(
            settings.resolved_database_url, may_migrate=settings.database_is_embedded_default
        )
        yield

    app = FastAPI(
        title="modscan",
        version=_version(),
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)

    # Every /v1 route declares the roles it allows (api.deps); none is open.
    v1 = APIRouter(prefix="/v1")
    v1.include_router(scans.router)
    v1.include_router(verdicts.router)
    v1.include_router(images.router)
    v1.include_router(policy.router)
    v1.include_router(audit.router)
    v1.include_router(keys.router)
    v1.include_router(review.router)
    app.include_router(v1)
    app.include_router(review_page.router)  # the HTML page; its key rides in a cookie
    app.include_router(ingest.router)  # token auth of its own, not /v1's
    app.include_router(health.router)
    return app


app = create_app()
