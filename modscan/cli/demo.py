"""``modscan demo``: prepare demo images and scan them in embedded mode."""

from __future__ import annotations

import time
from pathlib import Path

import click

from modscan.cli.common import load_settings, ready_database


@click.command()
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo"),
    show_default=True,
)
@click.option("--count", type=int, default=200, show_default=True)
def demo(folder: Path, count: int) -> None:
    """Prepare demo images (plus a few broken files) and scan them in embedded mode."""
    from modscan.demo import prepare_demo_images

    started = time.perf_counter()
    made = prepare_demo_images(folder, count=count)
    click.echo(f"prepared {made} demo files in {folder}/ ({time.perf_counter() - started:.1f}s)")
    settings = load_settings()
    if not settings.embedded:
        raise click.ClickException("the demo runs in embedded mode: unset MODSCAN_BROKER_URL")
    ready_database(settings)
    from modscan.cli.reporting import embedded_scan, print_verdicts
    from workers.classifier.artifact import read_card
    from workers.classifier.runner import ensure_artifact

    scan_id = embedded_scan(settings, str(folder))
    card = read_card(ensure_artifact(settings))
    shown = print_verdicts(
        settings,
        scan_id,
        "/photos/",
        "Real photographs (scikit-image's public-domain samples): each should read 'real'",
        card.uncertain_band,
    )
    if not shown:
        click.echo("(install scikit-image to add real sample photographs to the demo)")
