"""``modscan keys``, ``modscan audit``, ``modscan policy`` and ``modscan rescan``."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from db.models import as_utc
from modscan.cli_support import cli_actor, load_settings, ready_database

# --- keys ----------------------------------------------------------------------------------


@click.group()
def keys() -> None:
    """Issue, list and revoke API keys."""


@keys.command("create")
@click.option("--name", required=True, help="Who or what holds the key.")
@click.option(
    "--role",
    type=click.Choice(["submitter", "reviewer", "auditor", "admin"]),
    required=True,
)
def keys_create(name: str, role: str) -> None:
    """Issue a key; it is printed once and only its hash is stored."""
    from db.keys import issue_key
    from db.session import session_scope

    url = ready_database(load_settings())
    with session_scope(url) as session:
        issued = issue_key(session, name=name, role=role, actor=cli_actor())
        token, key_id = issued.token, issued.key.key_id
    click.echo(f"key {key_id} ({role}) for {name}:", err=True)
    click.echo(token)


@keys.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked keys.")
def keys_list(include_revoked: bool) -> None:
    from db.keys import list_keys
    from db.session import session_scope

    url = ready_database(load_settings())
    with session_scope(url) as session:
        rows = list_keys(session, include_revoked=include_revoked)
        click.echo(f"{'key_id':<14}{'role':<11}{'created':<22}{'revoked':<22}name")
        for k in rows:
            revoked = k.revoked_at.strftime("%Y-%m-%d %H:%M:%S") if k.revoked_at else "-"
            created = k.created_at.strftime("%Y-%m-%d %H:%M:%S")
            click.echo(f"{k.key_id:<14}{k.role:<11}{created:<22}{revoked:<22}{k.name}")


@keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke a key by its id (the part after msk_); it stops working at once."""
    from db.keys import UnknownKey, revoke_key
    from db.session import session_scope

    url = ready_database(load_settings())
    try:
        with session_scope(url) as session:
            revoke_key(session, key_id=key_id, actor=cli_actor())
    except UnknownKey as exc:
        raise click.ClickException(f"no key {key_id}") from exc
    click.echo(f"revoked {key_id}")


# --- audit ---------------------------------------------------------------------------------


@click.group(invoke_without_command=True)
@click.option("--subject-type", default=None, help="scan, verdict, policy, api_key, ...")
@click.option("--subject-id", default=None)
@click.option("--actor", default=None, help="e.g. key:ab12cd34ef56 or cli:alice")
@click.option("--action", default=None, help="e.g. review.decided")
@click.option("--since", type=click.DateTime(), default=None, help="UTC, inclusive.")
@click.option("--until", type=click.DateTime(), default=None, help="UTC, exclusive.")
@click.pass_context
def audit(
    ctx: click.Context,
    subject_type: str | None,
    subject_id: str | None,
    actor: str | None,
    action: str | None,
    since: datetime | None,
    until: datetime | None,
) -> None:
    """Print audit events as JSON lines, oldest first; `modscan audit verify` checks them."""
    if ctx.invoked_subcommand is not None:
        return
    from db.audit import AuditFilter, event_as_dict, iter_events
    from db.session import session_scope

    url = ready_database(load_settings())
    where = AuditFilter(
        subject_type=subject_type,
        subject_id=subject_id,
        actor=actor,
        action=action,
        since=as_utc(since),
        until=as_utc(until),
    )
    with session_scope(url) as session:
        for event in iter_events(session, where):
            click.echo(json.dumps(event_as_dict(event), sort_keys=True))


@audit.command("verify")
def audit_verify() -> None:
    """Walk the hash chain; exit 1 naming the first broken link."""
    from db.audit import verify_chain
    from db.session import session_scope

    url = ready_database(load_settings())
    with session_scope(url) as session:
        report = verify_chain(session)
    if report.ok:
        click.echo(f"audit chain ok: {report.checked} events")
        return
    click.echo(
        f"audit chain BROKEN at event {report.broken_at}: {report.reason} "
        f"({report.checked} events before it verified)",
        err=True,
    )
    raise SystemExit(1)


# --- policy --------------------------------------------------------------------------------


@click.group()
def policy() -> None:
    """Show, change or try out the moderation policy."""


def _print_policy(row: object) -> None:
    from db.policy import policy_dict

    click.echo(json.dumps(policy_dict(row), indent=2))  # type: ignore[arg-type]


@policy.command("show")
def policy_show() -> None:
    from db.policy import current_policy
    from db.session import session_scope

    url = ready_database(load_settings())
    with session_scope(url) as session:
        found = current_policy(session)
        if found is None:
            raise click.ClickException("no policy yet: the first scan makes one from the card")
        _print_policy(found)


F = TypeVar("F", bound=Callable[..., Any])


def _draft_options(fn: F) -> F:
    for option in reversed(
        [
            click.option("--low", type=float, required=True, help="Below: cleared."),
            click.option("--high", type=float, required=True, help="At or above: flagged."),
            click.option(
                "--check",
                "robustness_check",
                type=click.Choice(["off", "hflip", "jpeg_q75"]),
                default="hflip",
                show_default=True,
            ),
            click.option("--blind/--no-blind", default=False, help="Hide scores from reviewers."),
            click.option("--note", default="", help="Why."),
        ]
    ):
        fn = option(fn)
    return fn


@policy.command("set")
@_draft_options
def policy_set(low: float, high: float, robustness_check: str, blind: bool, note: str) -> None:
    """Put a new policy version in force."""
    from db.policy import InvalidPolicy, PolicyDraft, change_policy
    from db.session import session_scope

    url = ready_database(load_settings())
    draft = PolicyDraft(low, high, robustness_check, blind, note)
    try:
        with session_scope(url) as session:
            _print_policy(change_policy(session, draft, actor=cli_actor()))
    except InvalidPolicy as exc:
        raise click.ClickException(str(exc)) from exc


@policy.command("dry-run")
@_draft_options
def policy_dry_run(low: float, high: float, robustness_check: str, blind: bool, note: str) -> None:
    """How past verdicts' actions and the review queue would change under these values."""
    from db.policy import InvalidPolicy, PolicyDraft, dry_run
    from db.session import session_scope

    url = ready_database(load_settings())
    try:
        with session_scope(url) as session:
            run = dry_run(session, PolicyDraft(low, high, robustness_check, blind, note))
    except InvalidPolicy as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        json.dumps(
            {
                "verdicts": run.verdicts,
                "changed": run.changed,
                "review_queue": run.review_queue,
                "transitions": run.transitions,
            },
            indent=2,
        )
    )


# --- rescan --------------------------------------------------------------------------------


@click.command()
@click.option(
    "--model",
    "model_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="The model artifact to score with.",
)
@click.option("--scan", "scan_id", type=int, default=None, help="Images of this scan.")
@click.option("--since", type=click.DateTime(), default=None, help="Images with verdicts since.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--show", type=int, default=20, show_default=True, help="Flips to list.")
def rescan(
    model_dir: Path, scan_id: int | None, since: datetime | None, as_json: bool, show: int
) -> None:
    """Score stored images with another model and report which verdicts flip.

    The images are fetched again from where they were last seen; old verdicts stay.
    """
    if (scan_id is None) == (since is None):
        raise click.UsageError("give exactly one of --scan ID or --since T")
    settings = load_settings().model_copy(update={"model_path": model_dir})
    url = ready_database(settings)
    from db.session import session_scope
    from modscan.embedded_cli import _context
    from workers.embedded import run_embedded_scan
    from workers.rescan import compare, create_rescan, rescan_lister

    try:
        plan = create_rescan(settings, scan_id=scan_id, since=as_utc(since), actor=cli_actor())
    except LookupError as exc:
        raise click.ClickException(str(exc)) from exc
    ctx = _context(settings)
    try:
        lister = rescan_lister(plan.records, settings.chunk_size)
        run_embedded_scan(ctx, plan.rescan_id, lister=lister)
        model = (ctx.card.name, ctx.card.version)
    finally:
        ctx.close()
    with session_scope(url) as session:
        report = compare(session, plan.rescan_id, chosen=plan.scored_before, model=model)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
        return
    click.echo(
        f"rescan {report.rescan_id} with {report.model}: {len(plan.records)} images, "
        f"{report.compared} compared, {report.label_flips} label flips, "
        f"{report.action_flips} action flips, {report.changed_bytes} changed since, "
        f"{report.errors} errors"
    )
    for flip in report.flips[:show]:
        click.echo(
            f"  {flip.uri}: {flip.old_label} {flip.old_score:.3f} ({flip.old_action}) "
            f"→ {flip.new_label} {flip.new_score:.3f} ({flip.new_action})"
        )
