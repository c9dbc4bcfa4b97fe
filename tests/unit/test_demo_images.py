"""The demo's pictures: real sample photos (when scikit-image is there), drawings, broken files."""

from __future__ import annotations

from pathlib import Path

import pytest

from modscan.demo import SAMPLE_PHOTOS, prepare_demo_images, sample_photo_dir
from workers.classifier.decode import ImageError, decode_image


def test_demo_folder_holds_photos_drawings_and_broken_files(tmp_path: Path) -> None:
    if sample_photo_dir() is None:
        pytest.skip("scikit-image is not installed (make install adds it with the demo extra)")
    made = prepare_demo_images(tmp_path, count=6)
    photos = sorted((tmp_path / "photos").glob("*.*"))
    reencoded = sorted((tmp_path / "photos" / "reencoded").glob("*.jpg"))
    assert len(photos) == len(reencoded) == len(SAMPLE_PHOTOS)
    for path in [*photos, *reencoded]:
        assert decode_image(path.read_bytes(), size=32).pixels.shape == (32, 32, 3)
    broken = sorted((tmp_path / "broken").glob("*.jpg"))
    assert len(broken) == 4
    for path in broken:
        with pytest.raises(ImageError):
            decode_image(path.read_bytes(), size=32)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert made == len(files)
