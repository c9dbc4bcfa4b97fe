"""Demo images the demo command draws itself: no dataset images are shipped or needed.

- ``photos/``: real photographs a newcomer can check by eye, the public-domain sample images
  that scikit-image ships (astronaut, cat, coffee, rocket, ...), each also as a small
  re-encoded JPEG. When scikit-image is not installed, this folder is left out.
- ``pictures/``: procedurally drawn scenes (skies, suns, shapes), as JPEG, PNG and WebP at
  several sizes. They are drawings, neither photographs nor AI images, so their verdicts
  show throughput, not accuracy.
- ``copies/``: the same bytes under other names (scored once), and ``broken/``: files that
  must end as error rows, not crashes.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter


def _scene(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    w, h = size
    top = tuple(rng.randint(40, 200) for _ in range(3))
    bottom = tuple(rng.randint(0, 255) for _ in range(3))
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    for y in range(h):
        t = y / max(h - 1, 1)
        draw.line(
            [(0, y), (w, y)],
            fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)),
        )
    for _ in range(rng.randint(1, 6)):
        x0, y0 = rng.randint(0, w), rng.randint(0, h)
        r = rng.randint(max(2, w // 20), max(3, w // 4))
        color = tuple(rng.randint(0, 255) for _ in range(3))
        if rng.random() < 0.5:
            draw.ellipse([x0 - r, y0 - r, x0 + r, y0 + r], fill=color)
        else:
            draw.polygon([(x0, y0), (x0 + r, y0 + 2 * r), (x0 - r, y0 + 2 * r)], fill=color)
    if rng.random() < 0.5:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.0)))
    return image


# scikit-image's bundled sample photographs (public domain or CC0; see its data README).
SAMPLE_PHOTOS = (
    "astronaut.png",
    "camera.png",
    "chelsea.png",
    "coffee.png",
    "coins.png",
    "hubble_deep_field.jpg",
    "moon.png",
    "motorcycle_left.png",
    "rocket.jpg",
    "brick.png",
    "grass.png",
    "gravel.png",
    "page.png",
    "text.png",
)


def sample_photo_dir() -> Path | None:
    """Where scikit-image keeps its sample photos, without importing scikit-image."""
    import importlib.util

    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    return folder if folder.is_dir() else None


def prepare_photos(folder: Path) -> int:
    """Copy the sample photos, and a 256-px JPEG q70 re-encoding of each; return the count."""
    source = sample_photo_dir()
    if source is None:
        return 0
    out = folder / "photos"
    (out / "reencoded").mkdir(parents=True, exist_ok=True)
    made = 0
    for name in SAMPLE_PHOTOS:
        path = source / name
        if not path.is_file():
            continue
        (out / name).write_bytes(path.read_bytes())
        with Image.open(path) as im:
            small = im.convert("RGB")
            small.thumbnail((256, 256), Image.Resampling.LANCZOS)
            small.save(out / "reencoded" / f"{path.stem}-256px-q70.jpg", "JPEG", quality=70)
        made += 2
    return made


def prepare_demo_images(folder: Path, *, count: int = 200, seed: int = 7) -> int:
    """Write count pictures plus duplicates and broken files; return how many files."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pictures").mkdir(exist_ok=True)
    made = prepare_photos(folder)
    formats = [("JPEG", ".jpg"), ("PNG", ".png"), ("WEBP", ".webp")]
    first: Path | None = None
    for i in range(count):
        size = rng.choice([(32, 32), (64, 48), (320, 240), (640, 480)])
        fmt, ext = formats[i % len(formats)] if i % 5 == 0 else formats[0]
        path = folder / "pictures" / f"scene-{i:04d}{ext}"
        _scene(rng, size).save(path, fmt, quality=rng.randint(70, 95)) if fmt != "PNG" else (
            _scene(rng, size).save(path, fmt)
        )
        first = first or path
        made += 1
    assert first is not None
    dupes = folder / "copies"
    dupes.mkdir(exist_ok=True)
    for i, name in enumerate(["same-bytes-a.jpg", "same-bytes-b.jpg"]):
        (dupes / name).write_bytes(first.read_bytes())
        made += 1 + 0 * i
    broken = folder / "broken"
    broken.mkdir(exist_ok=True)
    buffer = io.BytesIO()
    _scene(rng, (200, 200)).save(buffer, "JPEG")
    (broken / "truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 3])
    (broken / "empty.jpg").write_bytes(b"")
    (broken / "notes.jpg").write_text("this is a text file with an image extension\n")
    (broken / "page.jpg").write_text("<html><body>not an image</body></html>\n")
    (broken / "readme.txt").write_text("skipped by extension\n")
    return made + 5
