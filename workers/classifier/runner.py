"""The classifier: an EfficientNet backbone with the origin's head, and its runner.

TensorFlow is imported inside functions only, so importing this module is cheap and safe in
a process that forks. Build and load the model in the process that will use it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from modscan.settings import Settings
from workers.classifier.artifact import (
    UNTRAINED_VERSION,
    WEIGHTS_FILE,
    ModelCard,
    read_card,
    sha256_file,
    verify_weights,
    write_card,
)

log = logging.getLogger(__name__)

BACKBONES = tuple(f"EfficientNetB{i}" for i in range(8))
DEFAULT_MODEL_DIR = Path("models") / "default"
CHECKOUT_MODEL_DIR = Path(__file__).resolve().parents[1] / "models" / "default"
_tf_lock = threading.Lock()


def build_classifier(
    backbone: str = "EfficientNetB6",
    input_size: int = 32,
    *,
    dense_units: int = 64,
    dropout: float = 0.0,
    l2: float = 0.0,
) -> Any:
    """Backbone (weights=None) → GAP → Dense(64, relu) → BatchNorm → Dense(1, sigmoid)."""
    import keras

    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
    regularizer = keras.regularizers.L2(l2) if l2 else None
    base = getattr(keras.applications, backbone)(
        include_top=False, weights=None, input_shape=(input_size, input_size, 3)
    )
    x = keras.layers.GlobalAveragePooling2D(name="pool")(base.output)
    if dropout:
        x = keras.layers.Dropout(dropout, name="pool_dropout")(x)
    x = keras.layers.Dense(
        dense_units, activation="relu", kernel_regularizer=regularizer, name="head_dense"
    )(x)
    x = keras.layers.BatchNormalization(name="head_bn")(x)
    out = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="head_out")(x)
    return keras.Model(base.input, out, name=f"modscan_{backbone.lower()}")


def default_artifact_path(settings: Settings) -> Path:
    """The configured artifact, else models/default (in the working directory, then in the
    source checkout this code runs from), else the generated untrained B6."""
    if settings.model_path is not None:
        return settings.model_path
    for folder in (DEFAULT_MODEL_DIR, CHECKOUT_MODEL_DIR):
        if (folder / "card.json").is_file():
            return folder
    return settings.home / "models" / "untrained-efficientnetb6-32"


def create_untrained_artifact(
    folder: Path, *, backbone: str = "EfficientNetB6", input_size: int = 32, seed: int = 0
) -> ModelCard:
    """A freshly initialised model, labelled ``untrained``, so the pipeline runs end to end."""
    import keras

    folder.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(seed)
    model = build_classifier(backbone, input_size)
    weights = folder / WEIGHTS_FILE
    partial = folder / f".partial-{os.getpid()}.weights.h5"
    model.save_weights(partial)
    os.replace(partial, weights)
    card = ModelCard(
        name=f"modscan-{backbone.lower()}",
        version=UNTRAINED_VERSION,
        backbone=backbone,
        input_size=input_size,
        threshold=0.5,
        weights_sha256=sha256_file(weights),
        training={"note": "freshly initialised, never trained; scores are meaningless"},
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    write_card(folder, card)
    return card


def ensure_artifact(settings: Settings) -> Path:
    folder = default_artifact_path(settings)
    if not (folder / "card.json").is_file():
        if settings.model_path is not None:
            read_card(folder)  # raises a clear ArtifactError
        folder.mkdir(parents=True, exist_ok=True)
        # Threads of this process, and other processes sharing the folder, create it once.
        with _tf_lock, (folder / ".create.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (folder / "card.json").is_file():
                log.warning(
                    "no trained model found; creating an untrained %s in %s",
                    "EfficientNetB6",
                    folder,
                )
                create_untrained_artifact(folder)
    return folder


def configure_tensorflow(settings: Settings) -> dict[str, Any]:
    """GPU memory growth; mixed precision and XLA defaults per device. Returns what was set."""
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        with contextlib.suppress(RuntimeError):  # already initialised
            tf.config.experimental.set_memory_growth(gpu, True)
    precision = settings.precision
    if precision == "auto":
        precision = "float16" if gpus else "float32"
    policy = {"float32": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}
    keras.mixed_precision.set_global_policy(policy[precision])
    xla = settings.xla == "on" or (settings.xla == "auto" and bool(gpus))
    return {
        "device": "gpu" if gpus else "cpu",
        "gpus": len(gpus),
        "precision": precision,
        "xla": xla,
    }


class ModelRunner:
    """A loaded model with a compiled forward pass at fixed batch shapes."""

    def __init__(self, folder: Path, settings: Settings) -> None:
        import tensorflow as tf

        self.folder = folder
        self.card = read_card(folder)
        weights = verify_weights(folder, self.card)
        self.setup = configure_tensorflow(settings)
        self.model = build_classifier(
            self.card.backbone,
            self.card.input_size,
            dense_units=int(self.card.head.get("dense_units", 64)),
            dropout=float(self.card.head.get("dropout", 0.0)),
        )
        self.model.load_weights(weights)
        sizes = sorted({s for s in settings.batch_sizes if s < settings.max_batch})
        self.batch_sizes = [*sizes, settings.max_batch]
        model = self.model

        def forward(x: Any) -> Any:
            return model(x, training=False)

        self._forward = tf.function(forward, jit_compile=bool(self.setup["xla"]))

    @property
    def input_size(self) -> int:
        return self.card.input_size

    def warm_up(self) -> None:
        """Trace every batch shape now, so the first real batch does not pay for it."""
        size = self.card.input_size
        for batch in self.batch_sizes:
            self._forward(np.zeros((batch, size, size, 3), dtype=np.float32)).numpy()

    def padded_size(self, n: int) -> int:
        for size in self.batch_sizes:
            if n <= size:
                return size
        return self.batch_sizes[-1]

    def sigmoid(self, pixels: np.ndarray) -> np.ndarray:
        """Raw model outputs for a uint8 batch (n, s, s, 3), at most max_batch long."""
        n = len(pixels)
        padded = self.padded_size(n)
        batch = np.zeros((padded, *pixels.shape[1:]), dtype=np.float32)
        batch[:n] = pixels
        out = self._forward(batch).numpy().reshape(-1)[:n]
        return np.asarray(out, dtype=np.float64)

    def ai_scores(self, pixels: np.ndarray) -> np.ndarray:
        """P(AI-generated) for each image, whatever the card's sigmoid means."""
        scores: list[np.ndarray] = []
        step = self.batch_sizes[-1]
        for start in range(0, len(pixels), step):
            raw = self.sigmoid(pixels[start : start + step])
            scores.append(self.card.ai_score(raw))
        return np.clip(np.concatenate(scores), 0.0, 1.0) if scores else np.zeros(0)
