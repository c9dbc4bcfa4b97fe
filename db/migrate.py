"""Alembic, driven from code: ``modscan migrate`` and the refusal to run unmigrated."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from db.session import get_engine, normalize_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class DatabaseNotMigrated(RuntimeError):
    """The configured database is not at the latest schema revision."""


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


def head_revision(url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def current_revision(url: str) -> str | None:
    with get_engine(url).connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(url: str) -> None:
    sqlite_path = make_url(normalize_url(url)).database
    if url.startswith("sqlite") and sqlite_path and sqlite_path != ":memory:":
        Path(sqlite_path).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), "head")


def ensure_migrated(url: str, *, may_migrate: bool) -> None:
    """Migrate the embedded default; refuse any other database that is behind."""
    if current_revision(url) == head_revision(url):
        return
    if may_migrate:
        upgrade(url)
        return
    shown = make_url(normalize_url(url)).render_as_string(hide_password=True)
    raise DatabaseNotMigrated(
        f"database {shown} is at revision {current_revision(url) or 'none'}, "
        f"modscan needs {head_revision(url)}: run `modscan migrate` first"
    )
