"""``modscan evaluate`` end to end: load the artifact and the data, measure, report."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from modscan.evaluation.evaluate import Evaluation, evaluate, resolve_data
from modscan.evaluation.report import metrics_table, write_report
from modscan.settings import Settings
from modscan.training.data import load_images
from workers.classifier.artifact import write_card


def run_evaluation(
    settings: Settings,
    model_path: Path | None,
    data: Path,
    *,
    split: str = "val",
    as_json: bool = False,
    limit: int | None = None,
    report: Path | None = None,
    robustness: bool = True,
    update_card: bool = False,
    echo: Callable[[str], None] = print,
) -> Evaluation:
    from workers.classifier.artifact import ArtifactError
    from workers.classifier.runner import ModelRunner, ensure_artifact

    folder = model_path or ensure_artifact(settings)
    try:
        runner = ModelRunner(folder, settings)  # verifies the weights' sha256
    except ArtifactError as exc:
        raise ValueError(str(exc)) from exc
    card = runner.card
    source = resolve_data(data, split)
    images = load_images(source, card.input_size, settings.home / "datasets")
    if limit is not None:
        images = images.sample(limit)
    started = time.monotonic()
    result = evaluate(card, runner.ai_scores, images, variants=None if robustness else [])
    seconds = time.monotonic() - started
    if report is not None:
        write_report(result, report, history=card.training.get("history"))
    if update_card:
        card.metrics["evaluation"] = {
            **result.summary(),
            "evaluated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        write_card(folder, card)
    if as_json:
        echo(json.dumps(result.summary(), sort_keys=True))
        return result
    if not card.trained:
        echo("WARNING: this model is untrained; its scores are meaningless")
    echo(f"{card.name} {card.version} on {source} ({len(images)} images, {seconds:.1f}s)")
    echo(
        f"threshold {card.threshold:.4f} on ai_score; confusion (rows true real/ai, "
        f"columns predicted real/ai): {result.plain.metrics.confusion}"
    )
    echo(metrics_table(result))
    if report is not None:
        echo(f"report written to {report}/")
    return result
