"""Binary detection metrics in plain numpy. Positive class = AI-generated (label 1).

``scores`` are P(AI) in [0, 1]; an image is called AI when its score is >= the threshold.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass
class Metrics:
    n: int
    threshold: float
    accuracy: float
    precision: float
    recall: float
    f1: float
    roc_auc: float
    ece: float
    log_loss: float
    tp: int
    fp: int
    tn: int
    fn: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def confusion(self) -> list[list[int]]:
        """Rows = true (real, ai), columns = predicted (real, ai)."""
        return [[self.tn, self.fp], [self.fn, self.tp]]


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else 0.0


def roc_auc(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Area under the ROC curve: P(score of a random AI image > a random real one), ties ½."""
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_scores = s[order]
    # average ranks over ties
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [len(s)]))
    for start, end in zip(starts, ends, strict=True):
        ranks[order[start:end]] = (start + end + 1) / 2.0
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_curve(
    labels: npt.ArrayLike, scores: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """False-positive rates, true-positive rates and the thresholds giving them (descending)."""
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    distinct = np.flatnonzero(np.diff(s_sorted)) if len(s) else np.array([], dtype=int)
    cut = np.concatenate((distinct, [len(s) - 1])) if len(s) else distinct
    tps = np.cumsum(y_sorted)[cut]
    fps = (cut + 1) - tps
    n_pos, n_neg = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    tpr = np.concatenate(([0.0], tps / n_pos))
    fpr = np.concatenate(([0.0], fps / n_neg))
    thresholds = np.concatenate(([np.inf], s_sorted[cut]))
    return fpr, tpr, thresholds


def expected_calibration_error(
    labels: npt.ArrayLike, scores: npt.ArrayLike, bins: int = 10
) -> float:
    """Σ_b (n_b / n) · |fraction of AI images in bin b - mean score in bin b|.

    Bins are ``bins`` equal-width intervals of the score P(AI); the last includes 1.0.
    """
    y = np.asarray(labels, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    if len(s) == 0:
        return 0.0
    index = np.minimum((s * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            total += mask.sum() / len(s) * abs(y[mask].mean() - s[mask].mean())
    return float(total)


def log_loss(labels: npt.ArrayLike, scores: npt.ArrayLike, eps: float = 1e-7) -> float:
    y = np.asarray(labels, dtype=np.float64)
    s = np.clip(np.asarray(scores, dtype=np.float64), eps, 1 - eps)
    if len(s) == 0:
        return 0.0
    return float(-np.mean(y * np.log(s) + (1 - y) * np.log(1 - s)))


def compute_metrics(
    labels: npt.ArrayLike, scores: npt.ArrayLike, threshold: float = 0.5
) -> Metrics:
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    predicted = s >= threshold
    tp = int((predicted & y).sum())
    fp = int((predicted & ~y).sum())
    tn = int((~predicted & ~y).sum())
    fn = int((~predicted & y).sum())
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    return Metrics(
        n=len(s),
        threshold=float(threshold),
        accuracy=_ratio(tp + tn, len(s)),
        precision=precision,
        recall=recall,
        f1=_ratio(2 * precision * recall, precision + recall),
        roc_auc=roc_auc(y, s),
        ece=expected_calibration_error(y, s),
        log_loss=log_loss(y, s),
        tp=tp,
        fp=fp,
        tn=tn,
        fn=fn,
    )
