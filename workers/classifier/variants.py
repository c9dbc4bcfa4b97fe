"""The same images, changed the way the web changes pictures, to see whether verdicts hold.

Each variant maps a uint8 batch ``(n, s, s, 3)`` to another of the same shape.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from PIL import Image

Pixels = npt.NDArray[np.uint8]
Variant = Callable[[Pixels], Pixels]


def _per_image(fn: Callable[[Image.Image], Image.Image]) -> Variant:
    def apply(pixels: Pixels) -> Pixels:
        out = np.empty_like(pixels)
        for i, image in enumerate(pixels):
            out[i] = np.asarray(fn(Image.fromarray(image)).convert("RGB"), dtype=np.uint8)
        return out

    return apply


def jpeg(quality: int) -> Variant:
    """Re-encode as baseline JPEG at ``quality`` (4:2:0, Pillow's default)."""

    def reencode(image: Image.Image) -> Image.Image:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality)
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            return decoded.convert("RGB")

    return _per_image(reencode)


def rescale(factor: int) -> Variant:
    """Upscale by ``factor`` (bicubic), then back down to the original size (bilinear)."""

    def up_down(image: Image.Image) -> Image.Image:
        w, h = image.size
        big = image.resize((w * factor, h * factor), Image.Resampling.BICUBIC)
        return big.resize((w, h), Image.Resampling.BILINEAR, reducing_gap=3.0)

    return _per_image(up_down)


def hflip(pixels: Pixels) -> Pixels:
    return np.ascontiguousarray(pixels[:, :, ::-1, :])


VARIANTS: dict[str, Variant] = {
    "jpeg_q75": jpeg(75),
    "jpeg_q50": jpeg(50),
    "rescale_2x": rescale(2),
    "hflip": hflip,
}
