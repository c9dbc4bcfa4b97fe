"""Choosing the decision threshold and the "uncertain" band from validation scores.

Rules, recorded in the card:
- threshold: the equal-error-rate point, where the share of real images called AI equals
  the share of AI images called real;
- uncertain band [low, high]: the widest scores around the threshold outside of which each
  call was right at least ``target_precision`` of the time on validation (AI calls at or
  above ``high``; real calls below ``low``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from modscan.evaluation.metrics import roc_curve


@dataclass
class Calibration:
    threshold: float
    low: float
    high: float
    rule: str
    target_precision: float
    eer: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "threshold": self.threshold,
            "uncertain_band": [self.low, self.high],
            "target_precision": self.target_precision,
            "equal_error_rate": self.eer,
        }


def equal_error_threshold(labels: npt.ArrayLike, scores: npt.ArrayLike) -> tuple[float, float]:
    """The threshold where FPR and FNR meet, and that error rate."""
    fpr, tpr, thresholds = roc_curve(labels, scores)
    fnr = 1.0 - tpr
    i = int(np.argmin(np.abs(fpr - fnr)[1:])) + 1  # skip the +inf point
    # Halfway to the next lower score: the same calls on validation, more margin on new data.
    cut = (thresholds[i] + thresholds[i + 1]) / 2.0 if i + 1 < len(thresholds) else thresholds[i]
    return float(cut), float((fpr[i] + fnr[i]) / 2.0)


def uncertain_band(
    labels: npt.ArrayLike, scores: npt.ArrayLike, threshold: float, target_precision: float
) -> tuple[float, float]:
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(s, kind="mergesort")
    s_sorted, ai_sorted = s[order], y[order].astype(np.int64)
    ai_below = np.concatenate(([0], np.cumsum(ai_sorted)))  # AI images among the first k
    cuts = np.unique(np.concatenate((s, [threshold])))
    k = np.searchsorted(s_sorted, cuts, side="left")  # images scoring below each cut
    n = len(s)
    with np.errstate(invalid="ignore", divide="ignore"):
        ai_precision = (ai_below[-1] - ai_below[k]) / (n - k)  # among scores >= cut
        real_precision = (k - ai_below[k]) / k  # among scores < cut
    high_ok = (cuts >= threshold) & (n - k > 0) & (ai_precision >= target_precision)
    low_ok = (cuts <= threshold) & (k > 0) & (real_precision >= target_precision)
    high = float(cuts[high_ok].min()) if high_ok.any() else 1.0
    low = float(cuts[low_ok].max()) if low_ok.any() else 0.0
    return low, high


def calibrate(
    labels: npt.ArrayLike, scores: npt.ArrayLike, target_precision: float = 0.99
) -> Calibration:
    threshold, eer = equal_error_threshold(labels, scores)
    low, high = uncertain_band(labels, scores, threshold, target_precision)
    return Calibration(
        threshold=threshold,
        low=min(low, threshold),
        high=max(high, threshold),
        rule="equal error rate on validation; band: validation precision of each call "
        f">= {target_precision:g} outside it",
        target_precision=target_precision,
        eer=eer,
    )
