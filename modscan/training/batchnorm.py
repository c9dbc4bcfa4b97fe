"""Re-estimating BatchNorm statistics after training.

Keras keeps an exponential moving average (momentum 0.99) of each BatchNorm layer's batch
statistics. Trained from scratch for few steps at a high learning rate, that average trails
the weights, and inference (which uses it) scores worse than training suggests. Recomputing
the statistics as a plain average over clean training batches with the final weights fixes
that without touching any learned weight.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def batchnorm_layers(model: Any) -> list[Any]:
    import keras

    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


def recompute_batchnorm_statistics(
    model: Any, pixels: np.ndarray, *, batches: int = 64, batch_size: int = 128, seed: int = 0
) -> int:
    """Set each BatchNorm layer's moving mean and variance to their average over ``batches``
    random batches of ``pixels``. Returns the number of layers updated."""
    layers = batchnorm_layers(model)
    if not layers:
        return 0
    saved = [layer.momentum for layer in layers]
    rng = np.random.default_rng(seed)
    try:
        for k in range(batches):
            # new = m * old + (1 - m) * batch with m = k / (k + 1): a running plain average
            for layer in layers:
                layer.momentum = k / (k + 1)
            index = rng.choice(len(pixels), size=min(batch_size, len(pixels)), replace=False)
            model(pixels[np.sort(index)].astype(np.float32), training=True)
    finally:
        for layer, momentum in zip(layers, saved, strict=True):
            layer.momentum = momentum
    return len(layers)
