"""Image bytes for tests, drawn with Pillow (no dataset images)."""

from __future__ import annotations

import io
import random

from PIL import Image


def jpeg_bytes(seed: int, size: tuple[int, int] = (32, 32), quality: int = 90) -> bytes:
    rng = random.Random(seed)
    image = Image.new("RGB", size, tuple(rng.randint(0, 255) for _ in range(3)))
    for _ in range(8):
        x, y = rng.randint(0, size[0] - 1), rng.randint(0, size[1] - 1)
        w, h = rng.randint(1, size[0]), rng.randint(1, size[1])
        image.paste(tuple(rng.randint(0, 255) for _ in range(3)), (x, y, x + w, y + h))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def bad_inputs() -> dict[str, tuple[bytes, str]]:
    """name → (bytes, expected error reason)."""
    whole = jpeg_bytes(999, (64, 64))
    return {
        "truncated.jpg": (whole[: len(whole) // 3], "corrupt"),
        "empty.jpg": (b"", "corrupt"),
        "notes.jpg": (b"just some text, not an image\n", "unsupported_format"),
    }
