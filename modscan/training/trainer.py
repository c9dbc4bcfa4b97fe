"""The resumable training loop: tf.data input, augmentation, warmup + cosine learning rate,
validation each epoch, best-by-validation weights, and a model artifact at the end.

A run keeps its state in ``<out>/checkpoints``. Running the same command again resumes from
the last checkpoint (mid-epoch included) with the same data order; a run stopped by
``time_budget_s`` checkpoints first, so a long training can span several sittings.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modscan.evaluation.metrics import compute_metrics
from modscan.training.augment import Augmentation, make_augment_fn
from modscan.training.checkpoints import (
    BEST_WEIGHTS,
    TrainingState,
    read_state,
    restore_checkpoint,
    save_checkpoint,
    write_state,
)
from modscan.training.data import LabelledImages

log = logging.getLogger(__name__)

# What the checkpoint must agree on to be resumed; other settings may change between sittings.
_RESUME_KEYS = (
    "backbone",
    "image_size",
    "batch_size",
    "epochs",
    "steps_per_epoch",
    "seed",
    "dense_units",
)


@dataclass
class TrainConfig:
    backbone: str = "EfficientNetB6"
    image_size: int = 32
    epochs: int = 3
    batch_size: int = 128
    learning_rate: float = 2e-3
    warmup_steps: int = 300
    min_learning_rate: float = 1e-6
    clip_norm: float = 1.0
    dense_units: int = 64
    dropout: float = 0.2
    l2: float = 1e-4
    seed: int = 0
    checkpoint_every_s: float = 600.0
    time_budget_s: float | None = None
    steps_per_epoch: int | None = None  # default: the whole training set each epoch
    augmentation: Augmentation = field(default_factory=Augmentation)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["augmentation"] = self.augmentation.as_dict()
        return out


@dataclass
class TrainResult:
    state: TrainingState
    finished: bool
    best_weights: Path


ProgressFn = Callable[[dict[str, Any]], None]


def _check_same_run(state: TrainingState, config: TrainConfig, checkpoint_dir: Path) -> None:
    wanted = config.as_dict()
    mismatched = [k for k in _RESUME_KEYS if state.config.get(k) != wanted[k]]
    if mismatched:
        raise ValueError(
            f"{checkpoint_dir} holds a run with other settings ({', '.join(mismatched)}); "
            "use another --out, or delete that checkpoint folder to start over"
        )


def _learning_rate_schedule(config: TrainConfig, total_steps: int) -> Any:
    import keras

    warmup = min(config.warmup_steps, max(total_steps // 10, 1))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config.learning_rate / 100.0,
        decay_steps=max(total_steps - warmup, 1),
        alpha=config.min_learning_rate / config.learning_rate,
        warmup_target=config.learning_rate,
        warmup_steps=warmup,
    )


def _epoch_dataset(
    train: LabelledImages, config: TrainConfig, epoch: int, skip_batches: int, steps: int
) -> Any:
    """One epoch's batches in an order fixed by (seed, epoch), resumable at any batch."""
    import tensorflow as tf

    rng = np.random.default_rng([config.seed, epoch])
    need = steps * config.batch_size
    order = rng.permutation(len(train))
    while len(order) < need:  # steps_per_epoch larger than the data: draw again
        order = np.concatenate((order, rng.permutation(len(train))))
    order = order[skip_batches * config.batch_size : need]
    labels = train.labels[order].astype(np.float32).reshape(-1, 1)
    ds = tf.data.Dataset.from_tensor_slices((train.pixels[order], labels))
    ds = ds.map(
        make_augment_fn(config.augmentation, config.image_size),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=False,
    )
    return ds.batch(config.batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def predict_scores(model: Any, pixels: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The model's sigmoid for uint8 images, in fixed-size batches (one traced shape)."""
    import tensorflow as tf

    forward = getattr(model, "_modscan_forward", None)
    if forward is None:
        forward = tf.function(lambda x: model(x, training=False))
        model._modscan_forward = forward
    out: list[np.ndarray] = []
    for start in range(0, len(pixels), batch_size):
        chunk = pixels[start : start + batch_size]
        batch = np.zeros((batch_size, *pixels.shape[1:]), dtype=np.float32)
        batch[: len(chunk)] = chunk
        out.append(forward(batch).numpy().reshape(-1)[: len(chunk)])
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


def train(
    train_set: LabelledImages,
    val_set: LabelledImages,
    checkpoint_dir: Path,
    config: TrainConfig,
    *,
    init_weights: Path | None = None,
    progress: ProgressFn | None = None,
) -> TrainResult:
    """Train (or resume) and return where the best weights are. Sigmoid = P(AI)."""
    import keras
    import tensorflow as tf

    from workers.classifier.runner import build_classifier

    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    state = read_state(checkpoint_dir)
    wanted = config.as_dict()
    if state is not None:
        _check_same_run(state, config, checkpoint_dir)
        log.info("resuming from %s at step %d", state.checkpoint, state.step)
    else:
        state = TrainingState(config=wanted)
    state.config = wanted
    state.sittings += 1

    steps_per_epoch = config.steps_per_epoch or len(train_set) // config.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"{len(train_set)} images make no batch of {config.batch_size}")
    total_steps = steps_per_epoch * config.epochs

    keras.utils.set_random_seed(config.seed + state.sittings)
    model = build_classifier(
        config.backbone,
        config.image_size,
        dense_units=config.dense_units,
        dropout=config.dropout,
        l2=config.l2,
    )
    optimizer = keras.optimizers.Adam(
        learning_rate=_learning_rate_schedule(config, total_steps),
        global_clipnorm=config.clip_norm or None,
    )
    if state.checkpoint is not None:
        restore_checkpoint(checkpoint_dir, state, model, optimizer)
    elif init_weights is not None:
        model.load_weights(init_weights)
        state.config["init_weights"] = str(init_weights)
    if not optimizer.built:
        # As restore_checkpoint does. Left to the first apply_gradients, the slots would be
        # created inside the traced step, and tf.function traces a step that creates
        # variables twice: for an EfficientNet that doubles the start-up (about 20 s on CPU).
        optimizer.build(model.trainable_variables)
    loss_fn = keras.losses.BinaryCrossentropy()

    def train_step(x: Any, y: Any) -> tuple[Any, Any]:
        with tf.GradientTape() as tape:
            p = model(x, training=True)
            loss = loss_fn(y, p)
            total = loss + tf.add_n(model.losses) if model.losses else loss
        grads = tape.gradient(total, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        correct = tf.reduce_mean(tf.cast(tf.equal(p >= 0.5, y >= 0.5), tf.float32))
        return loss, correct

    train_step = tf.function(train_step)

    started = time.monotonic()
    last_checkpoint = started
    seconds_before = state.seconds
    finished = True
    while state.step < total_steps:
        epoch, done_in_epoch = divmod(state.step, steps_per_epoch)
        epoch_started = time.monotonic()
        losses: list[float] = []
        accs: list[float] = []
        stop = False
        dataset = _epoch_dataset(train_set, config, epoch, done_in_epoch, steps_per_epoch)
        for x, y in dataset:
            loss, acc = train_step(x, y)
            losses.append(float(loss))
            accs.append(float(acc))
            state.step += 1
            now = time.monotonic()
            state.seconds = seconds_before + (now - started)
            if progress is not None and state.step % 10 == 0:
                progress(
                    {
                        "step": state.step,
                        "total": total_steps,
                        "epoch": epoch + 1,
                        "loss": float(np.mean(losses[-50:])),
                        "accuracy": float(np.mean(accs[-50:])),
                        "images_per_s": len(losses) * config.batch_size / (now - epoch_started),
                    }
                )
            if config.time_budget_s is not None and now - started >= config.time_budget_s:
                stop = True
                break
            if now - last_checkpoint >= config.checkpoint_every_s:
                save_checkpoint(checkpoint_dir, state, model, optimizer)
                last_checkpoint = time.monotonic()
        if stop and state.step % steps_per_epoch:
            finished = False
            save_checkpoint(checkpoint_dir, state, model, optimizer)
            log.info("time budget spent at step %d; checkpointed", state.step)
            break
        _end_of_epoch(model, val_set, state, checkpoint_dir, epoch, losses, accs, epoch_started)
        save_checkpoint(checkpoint_dir, state, model, optimizer)
        last_checkpoint = time.monotonic()
        if progress is not None:
            progress({"epoch_done": state.history[-1]})
        if stop:
            finished = state.step >= total_steps
            break
    write_state(checkpoint_dir, state)
    return TrainResult(state, finished, checkpoint_dir / BEST_WEIGHTS)


def finished_run(checkpoint_dir: Path, config: TrainConfig, n_train: int) -> TrainResult:
    """The run in ``checkpoint_dir`` as it stands, to export without training further."""
    state = read_state(checkpoint_dir)
    if state is None:
        raise ValueError(f"no training run in {checkpoint_dir}")
    _check_same_run(state, config, checkpoint_dir)
    steps_per_epoch = config.steps_per_epoch or n_train // config.batch_size
    finished = state.step >= steps_per_epoch * int(state.config["epochs"])
    return TrainResult(state, finished, checkpoint_dir / BEST_WEIGHTS)


def _end_of_epoch(
    model: Any,
    val_set: LabelledImages,
    state: TrainingState,
    checkpoint_dir: Path,
    epoch: int,
    losses: list[float],
    accs: list[float],
    epoch_started: float,
) -> None:
    """Validate, record the epoch, and keep the weights if they are the best so far."""
    train_seconds = time.monotonic() - epoch_started
    scores = predict_scores(model, val_set.pixels)
    metrics = compute_metrics(val_set.labels, scores, 0.5)
    record = {
        "epoch": epoch + 1,
        "step": state.step,
        "train_loss": float(np.mean(losses)) if losses else math.nan,
        "train_accuracy": float(np.mean(accs)) if accs else math.nan,
        "val_loss": metrics.log_loss,
        "val_accuracy": metrics.accuracy,
        "val_roc_auc": metrics.roc_auc,
        "seconds": train_seconds,
        "images_per_s": len(losses) * int(state.config["batch_size"]) / max(train_seconds, 1e-9),
    }
    state.history.append(record)
    # The score that picks the best epoch: ROC-AUC (threshold-free), accuracy breaks ties.
    score = metrics.roc_auc + 1e-3 * metrics.accuracy
    if state.best_score is None or score > state.best_score:
        state.best_score = score
        state.best_epoch = epoch + 1
        state.best_metrics = metrics.as_dict()
        model.save_weights(checkpoint_dir / BEST_WEIGHTS)
    log.info("epoch %d: %s", epoch + 1, record)
