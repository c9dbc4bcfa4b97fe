"""Turning a training run's best weights into a model artifact (weights + card.json)."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from modscan.evaluation.metrics import compute_metrics
from modscan.training.calibrate import calibrate
from modscan.training.data import LabelledImages
from modscan.training.trainer import TrainConfig, TrainResult, predict_scores
from workers.classifier.artifact import WEIGHTS_FILE, ModelCard, sha256_file, write_card


def code_version() -> str:
    """``git describe`` of the code that trained, with ``-dirty`` for uncommitted changes."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def write_float16_weights(source: Path, target: Path) -> None:
    """Copy a Keras ``.weights.h5`` with every float32 array stored as float16."""
    import h5py

    partial = target.with_name(f".{target.name}.{os.getpid()}")
    with h5py.File(source, "r") as src, h5py.File(partial, "w") as dst:
        for key, value in src.attrs.items():
            dst.attrs[key] = value

        def copy(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Group):
                group = dst.require_group(name)
                for key, value in obj.attrs.items():
                    group.attrs[key] = value
            elif isinstance(obj, h5py.Dataset):
                data = obj[()]
                if isinstance(data, np.ndarray) and data.dtype == np.float32:
                    data = data.astype(np.float16)
                dst.create_dataset(name, data=data)
                for key, value in obj.attrs.items():
                    dst[name].attrs[key] = value

        src.visititems(copy)
    os.replace(partial, target)


def _recompute_batchnorm(
    model: Any, result: TrainResult, train_set: LabelledImages, val_set: LabelledImages
) -> dict[str, Any]:
    """Recompute BatchNorm statistics on clean training images; keep them only if validation
    ROC-AUC does not drop. Returns what was measured, for the card."""
    from modscan.evaluation.metrics import roc_auc
    from modscan.training.batchnorm import recompute_batchnorm_statistics

    before = roc_auc(val_set.labels, predict_scores(model, val_set.pixels))
    recompute_batchnorm_statistics(model, train_set.pixels, batches=32)
    after = roc_auc(val_set.labels, predict_scores(model, val_set.pixels))
    kept = after >= before
    if not kept:
        model.load_weights(result.best_weights)
    return {
        "recomputed_on": "32 batches of 128 clean training images",
        "val_roc_auc_moving_average": before,
        "val_roc_auc_recomputed": after,
        "kept": "recomputed" if kept else "moving averages",
    }


def lineage(parent: ModelCard) -> dict[str, Any]:
    """What a card says about the artifact its training started from, with that one's own
    lineage nested, so a model continued over several sessions keeps its whole history."""
    return {
        "name": parent.name,
        "version": parent.version,
        "weights_sha256": parent.weights_sha256,
        "steps": parent.training.get("steps"),
        "history": parent.training.get("history"),
        "config": parent.training.get("config"),
        "initialized_from": parent.training.get("initialized_from"),
    }


def export_artifact(
    result: TrainResult,
    config: TrainConfig,
    train_set: LabelledImages,
    val_set: LabelledImages,
    out: Path,
    *,
    name: str | None = None,
    float16: bool = True,
    target_precision: float = 0.99,
    recompute_bn: bool = True,
    initialized_from: dict[str, Any] | None = None,
) -> ModelCard:
    """Calibrate the best weights on validation and write ``out`` as a model artifact.

    ``initialized_from`` (see :func:`lineage`) records the artifact training started from.
    """
    import keras

    from workers.classifier.runner import build_classifier

    out.mkdir(parents=True, exist_ok=True)
    # Dropout and stochastic depth are active while BatchNorm statistics are recomputed:
    # seed them, so exporting the same run twice gives the same weights.
    keras.utils.set_random_seed(config.seed)
    model = build_classifier(
        config.backbone, config.image_size, dense_units=config.dense_units, dropout=config.dropout
    )
    model.load_weights(result.best_weights)
    batchnorm = _recompute_batchnorm(model, result, train_set, val_set) if recompute_bn else None
    trained = out / f".trained-{os.getpid()}.weights.h5"
    model.save_weights(trained)
    weights = out / WEIGHTS_FILE
    if float16:
        write_float16_weights(trained, weights)
        trained.unlink()
    else:
        os.replace(trained, weights)
    model.load_weights(weights)  # score what ships: float16 values, loaded as float32
    scores = predict_scores(model, val_set.pixels)
    calibration = calibrate(val_set.labels, scores, target_precision)
    metrics = compute_metrics(val_set.labels, scores, calibration.threshold)
    state = result.state
    digest = sha256_file(weights)
    now = datetime.now(UTC)
    card = ModelCard(
        name=name or f"modscan-{config.backbone.lower()}",
        version=f"{now:%Y.%m.%d}-{digest[:8]}",
        backbone=config.backbone,
        input_size=config.image_size,
        resize="bilinear",
        sigmoid="p_ai",
        threshold=calibration.threshold,
        uncertain_band=[calibration.low, calibration.high],
        weights_sha256=digest,
        weights_dtype="float16" if float16 else "float32",
        head={"dense_units": config.dense_units, "dropout": config.dropout},
        metrics={
            "validation": {
                **metrics.as_dict(),
                "images": {"n": len(val_set), **val_set.counts()},
            },
            "calibration": calibration.as_dict(),
        },
        training={
            "code_version": code_version(),
            "data": {
                "train": {
                    "source": Path(train_set.source).name,
                    "sha256": train_set.checksum,
                    "n": len(train_set),
                    **train_set.counts(),
                },
                "validation": {
                    "source": Path(val_set.source).name,
                    "sha256": val_set.checksum,
                    "n": len(val_set),
                    **val_set.counts(),
                },
            },
            "config": state.config,
            "steps": state.step,
            "epochs_completed": len(state.history),
            "epochs_planned": config.epochs,
            "finished": result.finished,
            "best_epoch": state.best_epoch,
            "selected_by": "validation ROC-AUC at the end of each epoch",
            "history": state.history,
            "train_seconds": round(state.seconds, 1),
            "sittings": state.sittings,
            "batchnorm_statistics": batchnorm or "as trained (moving averages)",
            "initialized_from": initialized_from,
        },
        created_at=now.isoformat(timespec="seconds"),
    )
    write_card(out, card)
    return card
