"""`modscan train` and `modscan evaluate` on a tiny synthetic set: a run stopped mid-epoch
resumes from its checkpoint, the artifact loads through the pipeline's own runner, and a
tampered artifact is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from modscan.cli import main
from modscan.settings import Settings
from modscan.training.checkpoints import read_state
from modscan.training.run import run_training
from modscan.training.trainer import TrainConfig
from tests.support.images import write_labelled_set

# Several sittings of real EfficientNet training: on two busy cores (a parallel run, CI) the
# first test can pass the suite's 300 s default.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("toy")
    write_labelled_set(root, "train", per_class=16, seed=1)
    write_labelled_set(root, "val", per_class=8, seed=2)
    return root


def _config(**changes: object) -> TrainConfig:
    base = TrainConfig(
        backbone="EfficientNetB0", epochs=2, batch_size=8, steps_per_epoch=3, warmup_steps=1
    )
    for key, value in changes.items():
        setattr(base, key, value)
    return base


@pytest.mark.slow(seconds=220)
def test_train_stops_mid_epoch_resumes_and_ships_an_artifact(
    toy_data: Path, tmp_path: Path
) -> None:
    settings = Settings(home=tmp_path / "home")
    out = tmp_path / "model"
    lines: list[str] = []

    # Sitting 1: the budget runs out after the first step, inside epoch 1.
    card = run_training(settings, toy_data, out, _config(time_budget_s=0.0), echo=lines.append)
    assert card is None
    state = read_state(out / "checkpoints")
    assert state is not None and state.step == 1 and state.history == []
    assert (out / "checkpoints" / "step-1" / "optimizer.npz").is_file()
    assert not (out / "card.json").exists()

    # A different run cannot resume this one by accident.
    with pytest.raises(ValueError, match="batch_size"):
        run_training(settings, toy_data, out, _config(batch_size=4), echo=lines.append)

    # Sitting 2: resumes at step 1 and finishes both epochs.
    card = run_training(settings, toy_data, out, _config(), echo=lines.append)
    assert card is not None
    state = read_state(out / "checkpoints")
    assert state is not None and state.step == 6 and state.sittings == 2
    assert [h["epoch"] for h in state.history] == [1, 2]
    with np.load(out / "checkpoints" / "step-6" / "optimizer.npz") as slots:
        counters = [int(slots[k]) for k in slots.files if slots[k].shape == ()]
    assert 6 in counters  # restored at 1 and stepped 5 more; a fresh optimizer would say 5

    assert card.trained and card.sigmoid == "p_ai" and card.weights_dtype == "float16"
    assert card.uncertain_band is not None
    assert card.uncertain_band[0] <= card.threshold <= card.uncertain_band[1]
    validation = card.metrics["validation"]
    assert validation["n"] == 16 and 0.0 <= validation["accuracy"] <= 1.0
    training = card.training
    assert training["data"]["train"]["n"] == 32 and len(training["data"]["train"]["sha256"]) > 8
    assert training["config"]["seed"] == 0 and training["code_version"]
    assert training["finished"] is True and training["epochs_completed"] == 2
    assert training["batchnorm_statistics"]["kept"] in {"recomputed", "moving averages"}

    # The shipped weights load in the pipeline's runner and score as exported.
    from workers.classifier.runner import ModelRunner

    runner = ModelRunner(out, settings)
    from modscan.training.data import load_images

    val = load_images(toy_data / "val", 32)
    scores = runner.ai_scores(val.pixels)
    predicted = (scores >= card.threshold).astype(int)
    assert float(np.mean(predicted == val.labels)) == pytest.approx(validation["accuracy"])

    # Exporting again trains no further.
    again = run_training(settings, toy_data, out, _config(), echo=lines.append, export_only=True)
    assert again is not None and again.training["steps"] == 6
    after = read_state(out / "checkpoints")
    assert after is not None and (after.step, after.sittings) == (6, 2)
    assert after.history == state.history
    assert again.training["initialized_from"] is None  # trained from scratch

    # Continuing from the artifact records where it started, with that one's history.
    child = run_training(
        settings,
        toy_data,
        tmp_path / "continued",
        _config(epochs=1),
        echo=lines.append,
        init_from=out,
    )
    assert child is not None
    parent = child.training["initialized_from"]
    assert (parent["version"], parent["weights_sha256"]) == (again.version, again.weights_sha256)
    assert parent["steps"] == 6 and len(parent["history"]) == 2


@pytest.mark.slow(seconds=110)
def test_evaluate_reports_and_refuses_a_tampered_artifact(
    toy_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODSCAN_HOME", str(tmp_path / "home"))
    settings = Settings(home=tmp_path / "home")
    out = tmp_path / "model"
    run_training(settings, toy_data, out, _config(epochs=1), echo=lambda _: None)

    cli = CliRunner()
    report = tmp_path / "report"
    result = cli.invoke(
        main,
        [
            "evaluate",
            "--model",
            str(out),
            "--data",
            str(toy_data),
            "--json",
            "--report",
            str(report),
            "--update-card",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    for key in ("accuracy", "precision", "recall", "f1", "roc_auc", "ece", "n"):
        assert key in summary
    assert summary["n"] == 16
    assert set(summary["robustness"]) == {"jpeg_q75", "jpeg_q50", "rescale_2x", "hflip"}
    for name in (
        "roc.png",
        "confusion_matrix.png",
        "score_histograms.png",
        "training_curves.png",
        "report.json",
        "README.md",
    ):
        assert (report / name).stat().st_size > 0, name
    card = json.loads((out / "card.json").read_text())
    assert card["metrics"]["evaluation"]["n"] == 16

    table = cli.invoke(
        main, ["evaluate", "--model", str(out), "--data", str(toy_data / "val"), "--no-robustness"]
    )
    assert table.exit_code == 0, table.output
    assert "accuracy" in table.output and "plain" in table.output

    weights = out / "model.weights.h5"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    refused = cli.invoke(main, ["evaluate", "--model", str(out), "--data", str(toy_data)])
    assert refused.exit_code != 0
    assert "sha256" in refused.output and "refusing to load" in refused.output
