"""A decoded split in the per-machine cache, with the facts about it that travel
to every trial (ImageInfo).

A cache entry is a directory: images.npy (N, H, W, C) uint8, labels.npy (N,)
int64 and info.json (the ImageInfo, and how many of the images are for
training: any after them are the source's own validation images). It is built
in a temporary directory and renamed into place, so an entry is whole or
absent: concurrent trials, and a decode that fails half-way, never leave or
see a part of one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.data.image_decode import Listing, decode

IMAGES, LABELS, INFO = "images.npy", "labels.npy", "info.json"
STATS_CHUNK = 1024  # images per step of the mean/std pass (bounded memory on a large set)


@dataclass(frozen=True)
class ImageInfo:
    """What a classifier needs to know about its images; travels with the cached
    split to every trial and into run.json."""

    num_classes: int
    class_names: tuple[str, ...]
    channels: int  # 1 (grayscale) or 3 (RGB)
    image_size: tuple[int, int]  # (H, W)
    mean: tuple[float, ...]  # per channel, on the 0..1 scale, of the training images
    std: tuple[float, ...]

    def to_json(self) -> dict[str, Any]:
        """As info.json and run.json hold it: lists for tuples."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ImageInfo:
        """The inverse of to_json."""
        return cls(d["num_classes"], tuple(d["class_names"]), d["channels"],
                   (d["image_size"][0], d["image_size"][1]), tuple(d["mean"]), tuple(d["std"]))


@dataclass(frozen=True)
class CachedImages:
    """One cache entry (see the module's docstring)."""

    directory: str

    def exists(self) -> bool:
        """Whether the entry is there (whole: see the module's docstring)."""
        return (Path(self.directory) / INFO).is_file()

    def open(self) -> tuple[np.ndarray, np.ndarray]:
        """Images (memory-mapped: trials share one copy through the page cache) and labels."""
        d = Path(self.directory)
        return np.load(d / IMAGES, mmap_mode="r"), np.load(d / LABELS)

    def meta(self) -> tuple[ImageInfo, int]:
        """The info, and how many images (the first ones) are for training."""
        d = json.loads((Path(self.directory) / INFO).read_text())
        return ImageInfo.from_json(d["info"]), int(d["train_images"])


def build(target: Path, listing: Listing, *, train_images: int, size: tuple[int, int] | None,
          resize: bool, channels: int | None = None, info: ImageInfo | None = None,
          what: str = "") -> CachedImages:
    """Decode `listing` into the cache entry `target`, unless it is there already.
    `info`: given (a test split takes its training pool's), else computed from the
    first `train_images` images. `size`, `resize`, `channels`: as image_decode.decode."""
    cached = CachedImages(str(target))
    if cached.exists():
        return cached
    print(f"decoding {len(listing):,} images{what} into {target} (once per machine)...",
          file=sys.stderr, flush=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        images = decode(listing.names, listing.items, size=size, resize=resize,
                        channels=channels, allocate=lambda shape: np.lib.format.open_memmap(
                            tmp / IMAGES, mode="w+", dtype=np.uint8, shape=shape))
        if info is None:
            mean, std = channel_stats(images[:train_images])
            info = ImageInfo(len(listing.class_names), listing.class_names, images.shape[3],
                             (images.shape[1], images.shape[2]), mean, std)
        if isinstance(images, np.memmap):
            images.flush()
        del images
        np.save(tmp / LABELS, listing.labels.astype(np.int64))
        (tmp / INFO).write_text(json.dumps({"info": info.to_json(),
                                            "train_images": train_images}, indent=1))
        try:
            os.rename(tmp, target)
        except OSError:  # another process built the same entry first: keep theirs
            if not cached.exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return cached


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of (N, H, W, C) uint8 images, on the
    0..1 scale, read in chunks."""
    c = images.shape[3]
    total, squares, n = np.zeros(c), np.zeros(c), 0
    for start in range(0, len(images), STATS_CHUNK):
        chunk = np.asarray(images[start:start + STATS_CHUNK], np.float64).reshape(-1, c) / 255
        total += chunk.sum(0)
        squares += (chunk ** 2).sum(0)
        n += len(chunk)
    mean = total / n
    # a constant channel gets one grey level, not 0: normalising divides by it
    std = np.maximum(np.sqrt(np.maximum(squares / n - mean ** 2, 0)), 1 / 255)
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)
