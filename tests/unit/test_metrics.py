"""Evaluation metrics and calibration on cases worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from modscan.evaluation.metrics import (
    compute_metrics,
    expected_calibration_error,
    roc_auc,
    roc_curve,
)
from modscan.training.calibrate import calibrate, equal_error_threshold, uncertain_band

# Eight images, positive = AI. At threshold 0.5:
#   AI scores   0.9 0.8 0.6 0.3  -> called AI, AI, AI, real  => tp 3, fn 1
#   real scores 0.7 0.4 0.2 0.1  -> called AI, real, real, real => fp 1, tn 3
LABELS = [1, 1, 1, 1, 0, 0, 0, 0]
SCORES = [0.9, 0.8, 0.6, 0.3, 0.7, 0.4, 0.2, 0.1]


def test_counts_and_rates_by_hand() -> None:
    m = compute_metrics(LABELS, SCORES, 0.5)
    assert (m.tp, m.fn, m.fp, m.tn) == (3, 1, 1, 3)
    assert m.confusion == [[3, 1], [1, 3]]
    assert m.accuracy == pytest.approx(6 / 8)
    assert m.precision == pytest.approx(3 / 4)
    assert m.recall == pytest.approx(3 / 4)
    assert m.f1 == pytest.approx(3 / 4)
    assert m.n == 8


def test_threshold_moves_the_counts() -> None:
    m = compute_metrics(LABELS, SCORES, 0.75)  # AI calls: 0.9, 0.8 only
    assert (m.tp, m.fn, m.fp, m.tn) == (2, 2, 0, 4)
    assert m.precision == 1.0
    assert m.recall == pytest.approx(0.5)
    assert m.f1 == pytest.approx(2 * 1.0 * 0.5 / 1.5)


def test_roc_auc_counts_ordered_pairs() -> None:
    # 16 (AI, real) pairs; the AI image scores higher in all but: 0.6<0.7, 0.3<0.7, 0.3<0.4
    assert roc_auc(LABELS, SCORES) == pytest.approx(13 / 16)
    # ties count one half
    assert roc_auc([1, 0], [0.5, 0.5]) == pytest.approx(0.5)
    assert roc_auc([1, 1, 0], [0.9, 0.5, 0.5]) == pytest.approx((1 + 0.5) / 2)
    assert np.isnan(roc_auc([1, 1], [0.2, 0.3]))


def test_roc_curve_ends_at_the_corners() -> None:
    fpr, tpr, thresholds = roc_curve(LABELS, SCORES)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    assert area == pytest.approx(roc_auc(LABELS, SCORES))
    assert thresholds[0] == np.inf


def test_expected_calibration_error_by_hand() -> None:
    # Two bins used: [0.1, 0.2) holds scores 0.1, 0.1 (labels 0, 1) -> |0.5 - 0.1| = 0.4
    #                [0.9, 1.0] holds 0.95, 1.0 (labels 1, 1)      -> |1.0 - 0.975| = 0.025
    ece = expected_calibration_error([0, 1, 1, 1], [0.1, 0.1, 0.95, 1.0])
    assert ece == pytest.approx(0.5 * 0.4 + 0.5 * 0.025)
    assert expected_calibration_error([0, 1], [0.0, 1.0]) == 0.0


def test_equal_error_threshold_and_band() -> None:
    threshold, eer = equal_error_threshold(LABELS, SCORES)
    # from 0.6 down to just above 0.4: fpr 1/4 (the 0.7), fnr 1/4 (the 0.3); halfway is 0.5
    assert threshold == pytest.approx(0.5)
    assert eer == pytest.approx(0.25)
    low, high = uncertain_band(LABELS, SCORES, threshold, target_precision=1.0)
    # AI calls are all right from 0.8 up; real calls all right below 0.3
    assert low == pytest.approx(0.3)
    assert high == pytest.approx(0.8)


def test_calibration_on_separable_scores_has_no_band_to_speak_of() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 2000)
    scores = np.where(labels == 1, rng.uniform(0.6, 1.0, 2000), rng.uniform(0.0, 0.4, 2000))
    cal = calibrate(labels, scores, target_precision=0.99)
    assert 0.4 <= cal.threshold <= 0.6
    assert compute_metrics(labels, scores, cal.threshold).accuracy == 1.0
    assert cal.low <= cal.threshold <= cal.high
    assert cal.high - cal.low < 0.25
