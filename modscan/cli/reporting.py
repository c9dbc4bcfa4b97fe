"""What a scan shows at the terminal: the embedded scan's progress bar, the distributed
scan's follow mode, the end-of-scan summary and per-image verdict lines."""

from __future__ import annotations

import time

import click
from tqdm import tqdm

from db.models import Scan
from db.scans import scan_counts, scan_model_versions, top_ai_items, verdicts_matching
from db.session import session_scope
from modscan.cli.common import cli_actor, load_context
from modscan.settings import Settings


def embedded_scan(settings: Settings, source: str) -> int:
    from workers.embedded import create_embedded_scan, run_embedded_scan
    from workers.sources import InvalidSource

    try:
        scan_id = create_embedded_scan(settings, source, actor=cli_actor())
    except InvalidSource as exc:
        raise click.ClickException(str(exc)) from exc
    ctx = load_context(settings)
    bar = tqdm(total=0, unit="img", desc=f"scan {scan_id}", file=None, dynamic_ncols=True)

    def progress(done: int, listed: int) -> None:
        if bar.total != listed:
            bar.total = listed
        bar.update(done)

    started = time.perf_counter()
    try:
        run_embedded_scan(ctx, scan_id, progress=progress)
    finally:
        bar.close()
        ctx.close()
    elapsed = time.perf_counter() - started
    print_summary(settings, scan_id, elapsed)
    return scan_id


def print_summary(settings: Settings, scan_id: int, elapsed: float) -> None:
    with session_scope(settings.resolved_database_url) as session:
        scan = session.get(Scan, scan_id)
        counts = scan_counts(session, scan_id)
        top = top_ai_items(session, scan_id, limit=10)
        untrained = "untrained" in scan_model_versions(session, scan_id)
    assert scan is not None
    with_verdict = sum(counts.by_status.get(s, 0) for s in ("scored", "cached", "duplicate"))
    click.echo("")
    click.secho(f"scan {scan_id}: {scan.source_uri} — {scan.status}", bold=True)
    click.echo(
        f"  objects: {counts.total}  "
        + "  ".join(f"{status}: {n}" for status, n in sorted(counts.by_status.items()))
    )
    click.echo(
        "  labels:  "
        + ("  ".join(f"{label}: {n}" for label, n in sorted(counts.by_label.items())) or "none")
    )
    if counts.by_action:
        click.echo(
            "  actions: "
            + "  ".join(f"{action}: {n}" for action, n in sorted(counts.by_action.items()))
            + "  (policy; needs_review items wait in the review queue)"
        )
    click.echo(
        "  errors:  "
        + (
            "  ".join(f"{reason}: {n}" for reason, n in sorted(counts.errors_by_reason.items()))
            or "none"
        )
    )
    if top:
        click.echo("  most likely AI-generated:")
        for uri, score in top:
            click.echo(f"    {score:.3f}  {uri}")
    rate = with_verdict / elapsed if elapsed > 0 else 0.0
    click.echo(f"  {with_verdict} images in {elapsed:.1f}s: {rate:.1f} images/s")
    if untrained:
        click.secho(
            "  WARNING: these verdicts come from an UNTRAINED model: labels and scores are "
            "placeholders",
            fg="yellow",
            bold=True,
        )


def follow_scan(settings: Settings, scan_id: int, poll_s: float = 1.0) -> None:
    """Distributed mode: poll the scan until it completes, with a progress bar."""
    started = time.perf_counter()
    bar = tqdm(total=0, unit="img", desc=f"scan {scan_id}", dynamic_ncols=True)
    try:
        while True:
            with session_scope(settings.resolved_database_url) as session:
                scan = session.get(Scan, scan_id)
                counts = scan_counts(session, scan_id)
            assert scan is not None
            bar.total = max(scan.listed, counts.total)
            bar.n = counts.finished
            bar.refresh()
            if scan.status in ("completed", "failed"):
                break
            time.sleep(poll_s)
    finally:
        bar.close()
    print_summary(settings, scan_id, time.perf_counter() - started)


def print_verdicts(
    settings: Settings, scan_id: int, uri_contains: str, heading: str, band: list[float] | None
) -> int:
    """One line per matching source: label, ai_score, and whether it is in the uncertain band."""
    with session_scope(settings.resolved_database_url) as session:
        rows = verdicts_matching(session, scan_id, uri_contains)
    if not rows:
        return 0
    click.echo("")
    click.secho(heading, bold=True)
    for uri, label, score in rows:
        uncertain = band is not None and band[0] <= score < band[1]
        note = "  (uncertain)" if uncertain else ""
        click.echo(f"  {label:<5} {score:.3f}{note}  {uri.rsplit(uri_contains, 1)[-1]}")
    return len(rows)
