"""The model that ships in models/default: a verified, trained EfficientNetB6 whose card tells
the truth about CIFAKE validation (checked on a 500-image sample and on the whole split), and
that meets the 0.94 floor and the 0.95 target."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from workers.classifier.artifact import read_card, verify_weights

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / "default"
CIFAKE_VAL = REPO.parent / "shared" / "datasets" / "cifake" / "val.tar.gz"
FLOOR = 0.94
TARGET = 0.95  # on the whole validation split, at the calibrated threshold


def _card_accuracy() -> float:
    return float(read_card(MODEL).metrics["validation"]["accuracy"])


def test_shipped_artifact_is_a_trained_b6_that_verifies() -> None:
    card = read_card(MODEL)
    assert card.trained and card.backbone == "EfficientNetB6" and card.input_size == 32
    weights = verify_weights(MODEL, card)
    assert weights.stat().st_size <= 100 * 1024 * 1024
    assert card.uncertain_band is not None
    assert card.uncertain_band[0] <= card.threshold <= card.uncertain_band[1]
    assert card.training["data"]["validation"]["n"] > 0
    assert "rule" in card.metrics["calibration"]


@pytest.fixture(scope="module")
def sample_scores() -> tuple[np.ndarray, np.ndarray, float]:
    if not CIFAKE_VAL.is_file():
        pytest.skip(f"{CIFAKE_VAL} is absent: the CIFAKE validation split lives outside the repo")
    from modscan.settings import Settings
    from modscan.training.data import load_images
    from workers.classifier.runner import ModelRunner

    settings = Settings()
    runner = ModelRunner(MODEL, settings)
    sample = load_images(CIFAKE_VAL, 32, settings.home / "datasets").sample(500, seed=0)
    return sample.labels, runner.ai_scores(sample.pixels), runner.card.threshold


@pytest.mark.slow(seconds=25)
@pytest.mark.dataset
def test_card_accuracy_holds_on_a_validation_sample(
    sample_scores: tuple[np.ndarray, np.ndarray, float],
) -> None:
    labels, scores, threshold = sample_scores
    accuracy = float(np.mean((scores >= threshold) == labels.astype(bool)))
    # 500 images: one standard error is about 0.015 near 0.9; allow three.
    assert abs(accuracy - _card_accuracy()) <= 0.045


@pytest.fixture(scope="module")
def all_scores() -> tuple[np.ndarray, np.ndarray, float]:
    if not CIFAKE_VAL.is_file():
        pytest.skip(f"{CIFAKE_VAL} is absent: the CIFAKE validation split lives outside the repo")
    from modscan.settings import Settings
    from modscan.training.data import load_images
    from workers.classifier.runner import ModelRunner

    settings = Settings()
    runner = ModelRunner(MODEL, settings)
    images = load_images(CIFAKE_VAL, 32, settings.home / "datasets")
    return images.labels, runner.ai_scores(images.pixels), runner.card.threshold


@pytest.mark.dataset
@pytest.mark.slow(seconds=70)
def test_meets_the_target_on_the_whole_validation_split(
    all_scores: tuple[np.ndarray, np.ndarray, float],
) -> None:
    """The floor, checked on every validation image rather than a 500-image sample.

    The fixed 500-image sample (seed 0) is a hard one: it scores 0.932 for this model
    (0.952 on the whole split) and scored 0.928 for the previous one (0.942); a 500-image
    estimate has a standard error of about 0.01. Scoring all 10,086 images takes about a
    minute on 2 cores and has no sampling error, so the card's figure is reproduced here.
    """
    labels, scores, threshold = all_scores
    accuracy = float(np.mean((scores >= threshold) == labels.astype(bool)))
    assert accuracy >= FLOOR
    assert accuracy == pytest.approx(_card_accuracy(), abs=1e-3)
    assert accuracy >= TARGET
