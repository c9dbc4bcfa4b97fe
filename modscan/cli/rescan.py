"""``modscan rescan``: score stored images with another model and report the flips."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click

from db.models import as_utc
from modscan.cli.common import cli_actor, load_context, load_settings, ready_database


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
    from db.rescans import compare
    from db.session import session_scope
    from workers.embedded import run_embedded_scan
    from workers.rescan import create_rescan, rescan_lister

    try:
        plan = create_rescan(settings, scan_id=scan_id, since=as_utc(since), actor=cli_actor())
    except LookupError as exc:
        raise click.ClickException(str(exc)) from exc
    ctx = load_context(settings)
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
