"""``modscan keys create|list|revoke``: API keys."""

from __future__ import annotations

import click

from db.models import Role
from modscan.cli.common import cli_actor, load_settings, ready_database


@click.group()
def keys() -> None:
    """Issue, list and revoke API keys."""


@keys.command("create")
@click.option("--name", required=True, help="Who or what holds the key.")
@click.option(
    "--role",
    type=click.Choice(Role.ALL),
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
