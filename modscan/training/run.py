"""``modscan train`` end to end: load the splits, train or resume, export the artifact."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modscan.settings import Settings
from modscan.training.data import find_split, load_images
from modscan.training.trainer import TrainConfig, finished_run, train
from workers.classifier.artifact import ModelCard

log = logging.getLogger(__name__)
Echo = Callable[[str], None]


def _progress_printer(echo: Echo, every_s: float = 30.0) -> Callable[[dict[str, Any]], None]:
    last = [0.0]

    def show(event: dict[str, Any]) -> None:
        if "epoch_done" in event:
            e = event["epoch_done"]
            echo(
                f"epoch {e['epoch']}: train loss {e['train_loss']:.4f} "
                f"acc {e['train_accuracy']:.4f}"
                f" | val loss {e['val_loss']:.4f} acc {e['val_accuracy']:.4f}"
                f" auc {e['val_roc_auc']:.4f} | {e['seconds']:.0f}s, {e['images_per_s']:.1f} img/s"
            )
            return
        now = time.monotonic()
        if now - last[0] >= every_s:
            last[0] = now
            echo(
                f"step {event['step']}/{event['total']} (epoch {event['epoch']}): "
                f"loss {event['loss']:.4f} acc {event['accuracy']:.4f} "
                f"{event['images_per_s']:.1f} img/s"
            )

    return show


def run_training(
    settings: Settings,
    data: Path,
    out: Path,
    config: TrainConfig,
    *,
    echo: Echo,
    init_from: Path | None = None,
    float16: bool = True,
    checkpoint_dir: Path | None = None,
    export_only: bool = False,
    recompute_bn: bool = True,
) -> ModelCard | None:
    """Train (resuming if ``out``'s checkpoints exist) and write the artifact to ``out``.

    Returns the card, or None when the time budget ran out before the first epoch ended.
    With ``export_only``, writes the artifact from the checkpoints without training further.
    """
    from modscan.training.export import export_artifact, lineage
    from workers.classifier.runner import configure_tensorflow

    setup = configure_tensorflow(settings)
    if setup["precision"] != "float32" and setup["device"] == "cpu":
        echo(f"note: training in {setup['precision']} on the CPU is slower than float32 here")
    cache = settings.home / "datasets"
    started = time.monotonic()
    train_set = load_images(find_split(data, "train"), config.image_size, cache)
    val_set = load_images(find_split(data, "val"), config.image_size, cache)
    echo(
        f"data: train {len(train_set)} {train_set.counts()}, val {len(val_set)} "
        f"{val_set.counts()} ({time.monotonic() - started:.1f}s); device {setup['device']}, "
        f"{setup['precision']}"
    )
    init_weights = None
    parent = None
    if init_from is not None:
        from workers.classifier.artifact import read_card, verify_weights

        parent = read_card(init_from)
        init_weights = verify_weights(init_from, parent)
    ckpt = checkpoint_dir or out / "checkpoints"
    if export_only:
        result = finished_run(ckpt, config, len(train_set))
    else:
        result = train(
            train_set,
            val_set,
            ckpt,
            config,
            init_weights=init_weights,
            progress=_progress_printer(echo),
        )
    if result.state.best_epoch is None:
        echo(f"stopped at step {result.state.step} before an epoch ended; run again to resume")
        return None
    card = export_artifact(
        result,
        config,
        train_set,
        val_set,
        out,
        float16=float16,
        recompute_bn=recompute_bn,
        initialized_from=lineage(parent) if parent is not None else None,
    )
    v = card.metrics["validation"]
    status = "finished" if result.finished else "stopped early (run again to resume)"
    echo(
        f"{status}: best epoch {result.state.best_epoch}; validation accuracy {v['accuracy']:.4f}"
        f" at threshold {card.threshold:.4f}, ROC-AUC {v['roc_auc']:.4f}; wrote {out}"
    )
    return card
