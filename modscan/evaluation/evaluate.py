"""``modscan evaluate``: score a labelled set with an artifact, plain and under robustness
variants, and compare each variant's verdicts with the plain ones."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from modscan.evaluation.metrics import Metrics, compute_metrics
from modscan.training.data import LabelledImages
from workers.classifier.artifact import ModelCard
from workers.classifier.variants import VARIANTS

ScoreFn = Any  # (uint8 pixels) -> P(AI) scores


@dataclass
class VariantResult:
    name: str
    metrics: Metrics
    scores: npt.NDArray[np.float64]
    flipped: float  # share of images whose verdict differs from the plain one
    mean_abs_shift: float  # mean |score - plain score|

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.metrics.as_dict(),
            "verdicts_flipped": self.flipped,
            "mean_abs_score_shift": self.mean_abs_shift,
        }


@dataclass
class Evaluation:
    card: ModelCard
    dataset: str
    labels: npt.NDArray[np.int8]
    plain: VariantResult
    variants: list[VariantResult] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """One JSON object: the plain metrics at top level, then the rest."""
        m = self.plain.metrics
        return {
            "accuracy": m.accuracy,
            "precision": m.precision,
            "recall": m.recall,
            "f1": m.f1,
            "roc_auc": m.roc_auc,
            "ece": m.ece,
            "n": m.n,
            "threshold": m.threshold,
            "log_loss": m.log_loss,
            "confusion_matrix": {
                "rows": "true real, ai",
                "columns": "predicted real, ai",
                "values": m.confusion,
            },
            "model": {
                "name": self.card.name,
                "version": self.card.version,
                "backbone": self.card.backbone,
            },
            "dataset": self.dataset,
            "robustness": {v.name: v.as_dict() for v in self.variants},
        }


def evaluate_scores(
    labels: npt.ArrayLike,
    scores: npt.ArrayLike,
    threshold: float,
    name: str = "plain",
    reference: npt.NDArray[np.float64] | None = None,
) -> VariantResult:
    s = np.asarray(scores, dtype=np.float64)
    metrics = compute_metrics(labels, s, threshold)
    if reference is None:
        return VariantResult(name, metrics, s, 0.0, 0.0)
    flipped = float(np.mean((s >= threshold) != (reference >= threshold))) if len(s) else 0.0
    shift = float(np.mean(np.abs(s - reference))) if len(s) else 0.0
    return VariantResult(name, metrics, s, flipped, shift)


def evaluate(
    card: ModelCard,
    score: ScoreFn,
    images: LabelledImages,
    *,
    variants: list[str] | None = None,
) -> Evaluation:
    """Metrics at the card's threshold, plain and for each robustness variant."""
    plain_scores = np.asarray(score(images.pixels), dtype=np.float64)
    plain = evaluate_scores(images.labels, plain_scores, card.threshold)
    results = []
    for name in variants if variants is not None else list(VARIANTS):
        changed = VARIANTS[name](images.pixels)
        results.append(
            evaluate_scores(
                images.labels, score(changed), card.threshold, name, reference=plain_scores
            )
        )
    return Evaluation(card, images.source, images.labels, plain, results)


def resolve_data(data: Path, split: str) -> Path:
    """A split archive or folder given directly, a folder holding REAL/ and FAKE/, or the
    ``split`` inside a dataset folder."""
    from modscan.training.data import find_split

    if data.is_file() or (data / "REAL").is_dir() or (data / "FAKE").is_dir():
        return data
    return find_split(data, split)
