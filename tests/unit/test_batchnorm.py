"""Recomputed BatchNorm statistics are the plain average of the batches' statistics."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.slow
def test_recomputed_statistics_are_the_data_statistics() -> None:
    keras = pytest.importorskip("keras")
    from modscan.training.batchnorm import recompute_batchnorm_statistics

    inputs = keras.Input((4, 4, 3))
    outputs = keras.layers.BatchNormalization(name="bn")(inputs)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    pixels = (rng.random((8, 4, 4, 3)) * 255).astype(np.uint8)
    pixels[..., 1] //= 4  # channels with different means
    bn = model.get_layer("bn")

    assert recompute_batchnorm_statistics(model, pixels, batches=3, batch_size=8) == 1
    data = pixels.astype(np.float64)
    np.testing.assert_allclose(bn.moving_mean.numpy(), data.mean(axis=(0, 1, 2)), rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), data.var(axis=(0, 1, 2)), rtol=1e-3)
    assert bn.momentum == pytest.approx(0.99)  # restored
