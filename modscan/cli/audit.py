"""``modscan audit [verify]``: read the audit trail and check its hash chain."""

from __future__ import annotations

import json
from datetime import datetime

import click

from modscan.cli.common import load_settings, ready_database


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
        since=since,
        until=until,
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
