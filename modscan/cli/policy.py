"""``modscan policy show|set|dry-run``: the moderation policy."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

from db.policy import CHECKS
from modscan.cli.common import cli_actor, load_settings, ready_database


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
                type=click.Choice(CHECKS),
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
