"""What every ``modscan`` command module shares: settings, a ready database, the actor,
and the in-process worker context."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from modscan.settings import Settings, get_settings

if TYPE_CHECKING:  # TensorFlow-free at import: the context is built lazily
    from workers.context import WorkerContext


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


UNTRAINED_WARNING = (
    "WARNING: scoring with an UNTRAINED model ({name} {version}): its scores are "
    "meaningless. Point MODSCAN_MODEL_PATH at a trained model artifact."
)


def load_context(settings: Settings) -> WorkerContext:
    """The in-process worker state (model, batching engine), loaded and warmed, with a
    loud warning when the model is untrained. TensorFlow loads here, not at import."""
    from workers.context import WorkerContext

    ctx = WorkerContext(settings)
    if not ctx.card.trained:
        click.secho(
            UNTRAINED_WARNING.format(name=ctx.card.name, version=ctx.card.version),
            fg="yellow",
            bold=True,
            err=True,
        )
    click.echo(
        f"loading {ctx.card.name} {ctx.card.version} ({ctx.card.backbone}, "
        f"{ctx.card.input_size}x{ctx.card.input_size})...",
        err=True,
    )
    ctx.engine.wait_ready()
    return ctx
