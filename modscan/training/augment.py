"""Training-time augmentation, as tf.data map functions on one uint8 image at a time.

Flips, small shifts, brightness and contrast, and JPEG re-encoding at a random quality: the
last because users see verdicts change when the same picture is re-encoded, and the model
should not learn that "compressed once more" means anything. Optionally an up-and-down
rescale (a resampling blur), because a resized AI image must not read as real.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Augmentation:
    flip: bool = True
    max_shift: int = 2  # pixels, each way, with reflection padding
    brightness: float = 0.05  # ± fraction of the full range
    contrast: float = 0.1  # factor in [1 - c, 1 + c]
    jpeg_probability: float = 0.25
    jpeg_quality: tuple[int, int] = (60, 100)
    rescale_probability: float = 0.0  # upscale 1.5-3x (bicubic), back down (bilinear)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rescale_probability": self.rescale_probability,
            "flip": self.flip,
            "max_shift": self.max_shift,
            "brightness": self.brightness,
            "contrast": self.contrast,
            "jpeg_probability": self.jpeg_probability,
            "jpeg_quality": list(self.jpeg_quality),
        }


NO_AUGMENTATION = Augmentation(
    flip=False, max_shift=0, brightness=0.0, contrast=0.0, jpeg_probability=0.0
)


def make_augment_fn(aug: Augmentation, size: int) -> Any:
    """A function (uint8 image, label) → (float32 image in [0, 255], label) for Dataset.map."""
    import tensorflow as tf

    def augment(image: Any, label: Any) -> tuple[Any, Any]:
        if aug.jpeg_probability > 0:
            low, high = aug.jpeg_quality
            image = tf.cond(
                tf.random.uniform(()) < aug.jpeg_probability,
                lambda: tf.image.adjust_jpeg_quality(
                    image, tf.random.uniform((), low, high + 1, dtype=tf.int32)
                ),
                lambda: image,
            )
            image = tf.ensure_shape(image, (size, size, 3))
        if aug.rescale_probability > 0:
            image = tf.cond(
                tf.random.uniform(()) < aug.rescale_probability,
                lambda: _rescale(tf, image, size),
                lambda: image,
            )
        if aug.flip:
            image = tf.image.random_flip_left_right(image)
        if aug.max_shift > 0:
            pad = aug.max_shift
            image = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
            image = tf.image.random_crop(image, (size, size, 3))
        x = tf.cast(image, tf.float32)
        if aug.contrast > 0:
            factor = tf.random.uniform((), 1.0 - aug.contrast, 1.0 + aug.contrast)
            mean = tf.reduce_mean(x, axis=(0, 1), keepdims=True)
            x = (x - mean) * factor + mean
        if aug.brightness > 0:
            x = x + tf.random.uniform((), -aug.brightness, aug.brightness) * 255.0
        return tf.clip_by_value(x, 0.0, 255.0), label

    return augment


def _rescale(tf: Any, image: Any, size: int) -> Any:
    """Upscale by a random factor in [1.5, 3] (bicubic), then back down (bilinear,
    antialiased): the blur a resize leaves, as uint8 again."""
    big = tf.cast(tf.round(size * tf.random.uniform((), 1.5, 3.0)), tf.int32)
    up = tf.image.resize(tf.cast(image, tf.float32), (big, big), method="bicubic")
    down = tf.image.resize(up, (size, size), method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(down), 0.0, 255.0), tf.uint8)
