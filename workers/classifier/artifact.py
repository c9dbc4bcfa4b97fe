"""The model artifact: a folder holding the Keras weights and a ``card.json``.

The card says what the model is and how to use it: backbone, input size, resize, what the
sigmoid means, the decision threshold on ``ai_score`` = P(AI-generated), the sha256 of the
weights and the metrics. Loading verifies the sha256 and refuses a mismatch.

This module is light (no TensorFlow): the CLI and API can read cards without loading Keras.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

CARD_FILE = "card.json"
WEIGHTS_FILE = "model.weights.h5"
UNTRAINED_VERSION = "untrained"


class ArtifactError(RuntimeError):
    """The artifact is missing, malformed or does not match its card."""


@dataclass
class ModelCard:
    name: str
    version: str
    backbone: str = "EfficientNetB6"
    input_size: int = 32
    resize: str = "bilinear"
    sigmoid: Literal["p_real", "p_ai"] = "p_real"
    threshold: float = 0.5  # on ai_score: ai_score >= threshold means label "ai"
    uncertain_band: list[float] | None = None  # [low, high] on ai_score, when calibrated
    weights_file: str = WEIGHTS_FILE
    weights_sha256: str = ""
    weights_dtype: str = "float32"
    head: dict[str, Any] = field(default_factory=lambda: {"dense_units": 64, "dropout": 0.0})
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""

    @property
    def trained(self) -> bool:
        return self.version != UNTRAINED_VERSION

    def ai_score(self, sigmoid: Any) -> Any:
        """P(AI-generated) from the model's sigmoid output (a float or a numpy array)."""
        return 1.0 - sigmoid if self.sigmoid == "p_real" else sigmoid

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_card(folder: Path) -> ModelCard:
    card_path = folder / CARD_FILE
    if not card_path.is_file():
        raise ArtifactError(f"{folder} is not a model artifact: {CARD_FILE} is missing")
    try:
        raw = json.loads(card_path.read_text())
        return ModelCard(**raw)
    except (ValueError, TypeError) as exc:
        raise ArtifactError(f"{card_path} is not a valid model card: {exc}") from exc


def verify_weights(folder: Path, card: ModelCard) -> Path:
    """Return the weights path after checking its sha256 against the card."""
    weights = folder / card.weights_file
    if not weights.is_file():
        raise ArtifactError(f"{weights} is missing")
    actual = sha256_file(weights)
    if actual != card.weights_sha256:
        raise ArtifactError(
            f"refusing to load {weights}: its sha256 is {actual}, but the card says "
            f"{card.weights_sha256 or '(none)'}; the artifact was altered or is incomplete"
        )
    return weights


def write_card(folder: Path, card: ModelCard) -> None:
    """Write the card atomically: a reader sees the old card or the new one, never half."""
    partial = folder / f".{CARD_FILE}.{os.getpid()}.partial"
    partial.write_text(card.to_json())
    os.replace(partial, folder / CARD_FILE)
