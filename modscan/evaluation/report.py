"""The report folder: ``report.json``, ``README.md`` with the tables, and the figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from modscan.evaluation import plots
from modscan.evaluation.evaluate import Evaluation

COLUMNS = ("accuracy", "precision", "recall", "f1", "roc_auc", "ece")


def metrics_table(evaluation: Evaluation) -> str:
    """A plain-text table: one row per variant, plus verdict flips against the plain images."""
    header = f"{'variant':<12}" + "".join(f"{c:>10}" for c in COLUMNS) + f"{'flipped':>10}"
    rows = [header, "-" * len(header)]
    for name, values in _rows(evaluation):
        rows.append(f"{name:<12}" + "".join(f"{v:>10.4f}" for v in values))
    return "\n".join(rows)


def _rows(evaluation: Evaluation) -> list[tuple[str, list[float]]]:
    """(variant, [each of COLUMNS, then the share of verdicts flipped]) per variant."""
    out = []
    for result in [evaluation.plain, *evaluation.variants]:
        m = result.metrics.as_dict()
        out.append((result.name, [float(m[c]) for c in COLUMNS] + [result.flipped]))
    return out


def _markdown(evaluation: Evaluation, figures: dict[str, str]) -> str:
    card = evaluation.card
    m = evaluation.plain.metrics
    lines = [
        f"# Evaluation of {card.name} {card.version}",
        "",
        f"- Data: `{Path(evaluation.dataset).name}`, {m.n} images "
        f"({int(evaluation.labels.sum())} AI-generated, {m.n - int(evaluation.labels.sum())} real)",
        f"- Backbone: {card.backbone} at {card.input_size}x{card.input_size}; weights "
        f"{card.weights_dtype}, sha256 `{card.weights_sha256[:16]}…`",
        f"- Threshold on ai_score: {card.threshold:.4f}; uncertain band: {card.uncertain_band}",
        "",
        "| variant | " + " | ".join(COLUMNS) + " | verdicts flipped |",
        "|---|" + "---:|" * (len(COLUMNS) + 1),
    ]
    for name, values in _rows(evaluation):
        lines.append(f"| {name} | " + " | ".join(f"{v:.4f}" for v in values) + " |")
    lines += [
        "",
        f"Confusion matrix (rows: true real, AI; columns: predicted real, AI): `{m.confusion}`",
        "",
        "ECE: expected calibration error of ai_score over 10 equal-width bins. "
        "Verdicts flipped: share of images whose verdict differs from the unaltered image's.",
        "",
    ]
    lines += [f"![{name}]({file})" for name, file in figures.items()]
    return "\n".join(lines) + "\n"


def write_report(
    evaluation: Evaluation, folder: Path, history: list[dict[str, Any]] | None = None
) -> dict[str, Path]:
    """Write the report folder and return the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    card = evaluation.card
    labels = evaluation.labels
    written: dict[str, Path] = {}
    curves = plots.training_curves(history or [], folder / "training_curves.png")
    if curves is not None:
        written["training curves"] = curves
    roc_inputs = {"plain": (labels, evaluation.plain.scores)}
    roc_inputs.update({v.name: (labels, v.scores) for v in evaluation.variants})
    written["ROC"] = plots.roc(roc_inputs, folder / "roc.png")
    written["confusion matrix"] = plots.confusion(
        evaluation.plain.metrics.confusion, card.threshold, folder / "confusion_matrix.png"
    )
    written["score histograms"] = plots.score_histograms(
        labels,
        evaluation.plain.scores,
        card.threshold,
        card.uncertain_band,
        folder / "score_histograms.png",
    )
    summary = evaluation.summary()
    (folder / "report.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    written["json"] = folder / "report.json"
    figures = {name: path.name for name, path in written.items() if path.suffix == ".png"}
    (folder / "README.md").write_text(_markdown(evaluation, figures))
    written["markdown"] = folder / "README.md"
    return written
