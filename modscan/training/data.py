"""Labelled image sets in the CIFAKE layout, decoded once into uint8 arrays.

A source is a folder (``…/REAL/*.jpg`` and ``…/FAKE/*.jpg`` at any depth) or a ``.tar.gz``
archive of one. Pixels go through the pipeline's own decoder, so training, evaluation and
serving see the same bytes turned into the same pixels. Decoded arrays are cached under
``$MODSCAN_HOME/datasets`` keyed by the source's checksum and the image size.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from workers.classifier.decode import ImageError, decode_image

CLASS_DIRS = {"FAKE": 1, "REAL": 0}  # label 1 = AI-generated
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
_CACHE_FORMAT = 1


@dataclass
class LabelledImages:
    """Pixels ``(n, s, s, 3)`` uint8, labels ``(n,)`` (1 = AI), and where they came from."""

    pixels: npt.NDArray[np.uint8]
    labels: npt.NDArray[np.int8]
    names: list[str]
    source: str
    checksum: str
    skipped: int = 0

    def __len__(self) -> int:
        return len(self.labels)

    def counts(self) -> dict[str, int]:
        ai = int(self.labels.sum())
        return {"ai": ai, "real": len(self) - ai}

    def sample(self, n: int, seed: int = 0) -> LabelledImages:
        """A stratified random subset of ``n`` images (all of them if fewer)."""
        if n >= len(self):
            return self
        rng = np.random.default_rng(seed)
        picked: list[npt.NDArray[np.int64]] = []
        for label in (0, 1):
            idx = np.flatnonzero(self.labels == label)
            share = round(n * len(idx) / len(self))
            picked.append(rng.choice(idx, size=share, replace=False))
        order = np.sort(np.concatenate(picked))
        return LabelledImages(
            self.pixels[order],
            self.labels[order],
            [self.names[i] for i in order],
            self.source,
            f"{self.checksum}:sample{n}:{seed}",
        )


def label_for(path: str) -> int | None:
    """1 for a file under a FAKE folder, 0 under REAL, None for anything else."""
    parts = path.replace("\\", "/").split("/")
    if len(parts) < 2 or not parts[-1].lower().endswith(IMAGE_SUFFIXES):
        return None
    return CLASS_DIRS.get(parts[-2].upper())


def source_checksum(source: Path) -> str:
    """sha256 of an archive's bytes, or of a folder's sorted (path, size, mtime) listing."""
    digest = hashlib.sha256()
    if source.is_file():
        with source.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    for path in sorted(source.rglob("*")):
        if path.is_file():
            stat = path.stat()
            digest.update(
                f"{path.relative_to(source)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode()
            )
    return "listing:" + digest.hexdigest()


def _iter_archive(source: Path) -> Iterator[tuple[str, bytes]]:
    with tarfile.open(source, "r:*") as archive:
        for member in archive:
            if member.isfile() and label_for(member.name) is not None:
                handle = archive.extractfile(member)
                if handle is not None:
                    yield member.name, handle.read()


def _iter_folder(source: Path) -> Iterator[tuple[str, bytes]]:
    for path in sorted(source.rglob("*")):
        rel = str(path.relative_to(source))
        if path.is_file() and label_for(rel) is not None:
            yield rel, path.read_bytes()


def _decode_all(source: Path, size: int, checksum: str) -> LabelledImages:
    if not source.exists():
        raise FileNotFoundError(f"no dataset at {source}")
    items = _iter_archive(source) if source.is_file() else _iter_folder(source)
    names: list[str] = []
    labels: list[int] = []
    pixels: list[npt.NDArray[np.uint8]] = []
    skipped = 0
    for name, data in items:
        try:
            decoded = decode_image(data, size=size)
        except ImageError:
            skipped += 1
            continue
        names.append(name)
        labels.append(label_for(name) or 0)
        pixels.append(decoded.pixels)
    if not names:
        raise ValueError(f"{source} holds no images under REAL/ or FAKE/ folders")
    order = np.argsort(np.array(names))  # a stable order, whatever the archive's
    return LabelledImages(
        pixels=np.stack(pixels)[order],
        labels=np.array(labels, dtype=np.int8)[order],
        names=[names[i] for i in order],
        source=str(source),
        checksum=checksum,
        skipped=skipped,
    )


def load_images(source: Path, size: int, cache_dir: Path | None = None) -> LabelledImages:
    """Decode ``source`` at ``size`` x ``size``, through the cache when one is given."""
    checksum = source_checksum(source)
    if cache_dir is None:
        return _decode_all(source, size, checksum)
    key = hashlib.sha256(f"{_CACHE_FORMAT}:{checksum}:{size}".encode()).hexdigest()[:24]
    cached = cache_dir / f"{key}.npz"
    if cached.is_file():
        with np.load(cached, allow_pickle=False) as data:
            return LabelledImages(
                pixels=data["pixels"],
                labels=data["labels"],
                names=[str(n) for n in data["names"]],
                source=str(source),
                checksum=checksum,
                skipped=int(data["skipped"]),
            )
    images = _decode_all(source, size, checksum)
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = cache_dir / f".{key}.{os.getpid()}.npz"
    with partial.open("wb") as handle:
        np.savez(
            handle,
            pixels=images.pixels,
            labels=images.labels,
            names=np.array(images.names),
            skipped=np.array(images.skipped),
        )
    os.replace(partial, cached)
    return images


def find_split(data: Path, split: str) -> Path:
    """``data/split``, ``data/split.tar.gz`` or ``data`` itself when it holds REAL/FAKE."""
    for candidate in (data / split, data / f"{split}.tar.gz", data / f"{split}.tgz"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(
        f"{data} has no {split!r} split: expected {split}/ or {split}.tar.gz "
        "(CIFAKE layout: <split>/REAL/*.jpg and <split>/FAKE/*.jpg)"
    )
