"""What every ``modscan`` command module shares: settings, a ready database, the actor."""

from __future__ import annotations

import click

from modscan.settings import Settings, get_settings


def cli_actor() -> str:
    """How the audit trail names someone at this terminal."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "cli:unknown"


def load_settings() -> Settings:
    return get_settings()


def ready_database(settings: Settings) -> str:
    """The database URL, migrated if it is the embedded default, else checked."""
    from db.migrate import DatabaseNotMigrated, ensure_migrated

    url = settings.resolved_database_url
    try:
        ensure_migrated(url, may_migrate=settings.database_is_embedded_default)
    except DatabaseNotMigrated as exc:
        raise click.ClickException(str(exc)) from exc
    return url
