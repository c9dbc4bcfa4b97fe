"""Loading labelled sets from folders and archives; augmentation and robustness variants."""

from __future__ import annotations

import tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from modscan.evaluation.evaluate import resolve_data
from modscan.training.data import find_split, label_for, load_images
from tests.support.images import write_labelled_set
from workers.classifier.variants import VARIANTS, hflip


def test_labels_come_from_the_folder_name() -> None:
    assert label_for("train/FAKE/a.jpg") == 1
    assert label_for("x/y/real/b.JPEG") == 0
    assert label_for("train/OTHER/c.jpg") is None
    assert label_for("train/FAKE/notes.txt") is None
    assert label_for("a.jpg") is None


def test_folder_and_archive_give_the_same_images(tmp_path: Path) -> None:
    split = write_labelled_set(tmp_path / "data", "train", per_class=6)
    (split / "FAKE" / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    (split / "README.txt").write_text("ignored")
    archive = tmp_path / "train.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(split, arcname="train")

    from_folder = load_images(split, 32)
    from_archive = load_images(archive, 32)
    assert len(from_folder) == len(from_archive) == 12
    assert from_folder.skipped == from_archive.skipped == 1  # the broken file, not a crash
    assert from_folder.counts() == {"ai": 6, "real": 6}
    assert np.array_equal(from_folder.pixels, from_archive.pixels)
    assert from_folder.pixels.shape == (12, 32, 32, 3) and from_folder.pixels.dtype == np.uint8
    assert from_folder.checksum != from_archive.checksum


def test_cache_is_reused_and_keyed_by_content(tmp_path: Path) -> None:
    split = write_labelled_set(tmp_path / "data", "val", per_class=3)
    cache = tmp_path / "cache"
    first = load_images(split, 16, cache)
    assert len(list(cache.glob("*.npz"))) == 1
    again = load_images(split, 16, cache)
    assert np.array_equal(first.pixels, again.pixels) and first.names == again.names
    (split / "REAL" / "extra.jpg").write_bytes((split / "FAKE").iterdir().__next__().read_bytes())
    changed = load_images(split, 16, cache)
    assert len(changed) == 7 and len(list(cache.glob("*.npz"))) == 2


def test_missing_split_names_the_layout(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="CIFAKE layout"):
        find_split(tmp_path, "val")
    write_labelled_set(tmp_path, "val", per_class=1)
    assert resolve_data(tmp_path, "val") == tmp_path / "val"
    assert resolve_data(tmp_path / "val", "ignored") == tmp_path / "val"


def test_sample_is_stratified_and_repeatable(tmp_path: Path) -> None:
    images = load_images(write_labelled_set(tmp_path, "val", per_class=10), 16)
    sample = images.sample(10, seed=3)
    assert sample.counts() == {"ai": 5, "real": 5}
    assert sample.names == images.sample(10, seed=3).names


def test_robustness_variants_keep_shape_and_change_pixels(tmp_path: Path) -> None:
    images = load_images(write_labelled_set(tmp_path, "val", per_class=4), 32)
    for name, variant in VARIANTS.items():
        out = variant(images.pixels)
        assert out.shape == images.pixels.shape and out.dtype == np.uint8, name
        assert not np.array_equal(out, images.pixels), name
    assert np.array_equal(hflip(hflip(images.pixels)), images.pixels)
    assert np.array_equal(hflip(images.pixels)[:, :, 0], images.pixels[:, :, -1])


def test_augmentation_keeps_shape_and_range(tmp_path: Path) -> None:
    tf = pytest.importorskip("tensorflow")
    from modscan.training.augment import NO_AUGMENTATION, Augmentation, make_augment_fn

    images = load_images(write_labelled_set(tmp_path, "val", per_class=2), 32)
    strong = make_augment_fn(Augmentation(jpeg_probability=1.0), 32)
    none = make_augment_fn(NO_AUGMENTATION, 32)
    x, y = strong(tf.constant(images.pixels[0]), tf.constant(1.0))
    assert x.shape == (32, 32, 3) and x.dtype == tf.float32 and float(y) == 1.0
    assert float(tf.reduce_min(x)) >= 0.0 and float(tf.reduce_max(x)) <= 255.0
    same, _ = none(tf.constant(images.pixels[0]), tf.constant(0.0))
    assert np.array_equal(same.numpy(), images.pixels[0].astype(np.float32))


def test_rescale_augmentation_blurs_like_a_resize(tmp_path: Path) -> None:
    tf = pytest.importorskip("tensorflow")
    from modscan.training.augment import NO_AUGMENTATION, make_augment_fn

    images = load_images(write_labelled_set(tmp_path, "val", per_class=2), 32)
    only_rescale = replace(NO_AUGMENTATION, rescale_probability=1.0)
    x, _ = make_augment_fn(only_rescale, 32)(tf.constant(images.pixels[0]), tf.constant(1.0))
    original = images.pixels[0].astype(np.float32)
    blurred = x.numpy()
    assert blurred.shape == (32, 32, 3) and not np.array_equal(blurred, original)

    def edges(a: np.ndarray) -> float:  # high-frequency energy: what a resize takes away
        return float(np.abs(np.diff(a, axis=1)).mean() + np.abs(np.diff(a, axis=0)).mean())

    assert edges(blurred) < edges(original)
    assert abs(blurred.mean() - original.mean()) < 5.0  # a blur, not a brightness change
