"""Resumable training state: weights, optimizer slots and progress, written atomically.

A checkpoint is a folder ``step-<n>/`` holding ``model.weights.h5`` and ``optimizer.npz``;
``state.json`` names the current one and carries the history. ``state.json`` is replaced
atomically after the folder is complete, so a run killed mid-write resumes from the previous
checkpoint. The best weights so far (by validation score) live in ``best.weights.h5``.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

STATE_FILE = "state.json"
BEST_WEIGHTS = "best.weights.h5"


@dataclass
class TrainingState:
    config: dict[str, Any]
    step: int = 0
    checkpoint: str | None = None
    best_score: float | None = None
    best_epoch: int | None = None
    best_metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0  # training time summed over sittings
    sittings: int = 0


def read_state(folder: Path) -> TrainingState | None:
    path = folder / STATE_FILE
    if not path.is_file():
        return None
    return TrainingState(**json.loads(path.read_text()))


def write_state(folder: Path, state: TrainingState) -> None:
    partial = folder / f".{STATE_FILE}.{os.getpid()}"
    partial.write_text(json.dumps(asdict(state), indent=2, sort_keys=True) + "\n")
    os.replace(partial, folder / STATE_FILE)


def save_checkpoint(folder: Path, state: TrainingState, model: Any, optimizer: Any) -> None:
    """Write weights and optimizer slots for ``state.step``, then point the state at them."""
    name = f"step-{state.step}"
    target = folder / name
    partial = folder / f".{name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    model.save_weights(partial / "model.weights.h5")
    slots = {f"v{i}": np.asarray(v.numpy()) for i, v in enumerate(optimizer.variables)}
    np.savez(partial / "optimizer.npz", **slots)  # type: ignore[arg-type]
    shutil.rmtree(target, ignore_errors=True)
    os.replace(partial, target)
    previous = state.checkpoint
    state.checkpoint = name
    write_state(folder, state)
    if previous and previous != name:
        shutil.rmtree(folder / previous, ignore_errors=True)


def restore_checkpoint(folder: Path, state: TrainingState, model: Any, optimizer: Any) -> None:
    """Load the weights and optimizer slots the state names."""
    if state.checkpoint is None:
        return
    target = folder / state.checkpoint
    model.load_weights(target / "model.weights.h5")
    optimizer.build(model.trainable_variables)
    with np.load(target / "optimizer.npz") as slots:
        values = [slots[f"v{i}"] for i in range(len(slots.files))]
    if len(values) != len(optimizer.variables):
        raise RuntimeError(
            f"checkpoint {target} has {len(values)} optimizer variables, the optimizer "
            f"{len(optimizer.variables)}: it was written for another model"
        )
    for variable, value in zip(optimizer.variables, values, strict=True):
        variable.assign(value)
