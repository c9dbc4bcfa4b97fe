"""Image bytes for tests, drawn with Pillow (no dataset images)."""

from __future__ import annotations

import io
import random
from pathlib import Path

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


def labelled_image(label: str, seed: int, size: int = 32) -> bytes:
    """A toy 'FAKE' (smooth, blurred shapes) or 'REAL' (grainy blocks) JPEG.

    The two kinds differ plainly in texture, so a tiny model learns them in a few steps.
    """
    from PIL import ImageFilter

    rng = random.Random(seed)
    image = Image.open(io.BytesIO(jpeg_bytes(seed, (size, size), quality=95))).convert("RGB")
    if label == "FAKE":
        image = image.filter(ImageFilter.GaussianBlur(2.5))
    else:
        noise = Image.effect_noise((size, size), 80).convert("RGB")
        image = Image.blend(image, noise, 0.5)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=rng.randint(85, 95))
    return buffer.getvalue()


def write_labelled_set(root: Path, split: str, per_class: int, seed: int = 0) -> Path:
    """root/split/{REAL,FAKE}/*.jpg in the CIFAKE layout; returns root/split."""
    for offset, label in enumerate(("REAL", "FAKE")):
        folder = root / split / label
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            item_seed = seed * 100_000 + offset * 10_000 + i
            (folder / f"{item_seed:07d}.jpg").write_bytes(labelled_image(label, item_seed))
    return root / split
