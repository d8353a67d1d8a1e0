"""CIFAR-10: found under the data directory, decoded once per machine like any
image source.

Where, in order: a directory of Hugging Face-style Parquet files
(`train-*.parquet` with `img{bytes,path}` and `label`, read by ParquetImages),
torchvision's `cifar-10-batches-py`, and, failing both, a torchvision download
into the data directory (CIFAR-10 only: no other source is ever downloaded).
"""

from __future__ import annotations

import os
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from pipelines.data.cache import DATA_DIR_ENV
from pipelines.data.image_decode import ImageItem, Listing
from pipelines.data.image_source import ImageSource
from pipelines.data.parquet_images import ParquetImages
from pipelines.errors import UsageError

OFFLINE_ENV = "RAYSWEEP_OFFLINE"  # "1": never try a download (tests, air-gapped clusters)
# the class names of the pickled batches (the Parquet files carry their own, the same)
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
               "ship", "truck")


@dataclass(frozen=True)
class Cifar10(ImageSource):
    """CIFAR-10's 50,000 training and 10,000 test images (32x32 RGB, 10 classes)."""

    kind: ClassVar[str] = "cifar10"
    test_layout: ClassVar[str] = "test-*.parquet beside train-*.parquet, or test_batch"

    def locate(self, data_dir: Path) -> Path:
        return locate(data_dir)[1]

    def split_files(self, data_dir: Path, split: str) -> list[Path]:
        kind, where = locate(data_dir)
        if kind == "parquet":
            return _CifarParquet(str(where)).split_files(data_dir, split)
        return [f for f in _batch_files(where, split) if f.is_file()]

    def read(self, data_dir: Path, split: str, class_names: tuple[str, ...] | None) -> Listing:
        kind, where = locate(data_dir)
        if kind == "parquet":
            return _CifarParquet(str(where)).read(data_dir, split, class_names)
        return _read_batches(where, split)


@dataclass(frozen=True)
class _CifarParquet(ParquetImages):
    """CIFAR-10's Parquet files (Hugging Face's cifar10 layout, ParquetImages'
    default columns); a file without those columns holds other data."""

    column_fix: ClassVar[str] = ("CIFAR-10's files have columns img and label; for other "
                                 "data, give a sweep data=ParquetImages(folder, "
                                 "{field}='<column>')")


def _parquet_candidates(root: Path) -> list[Path]:
    return [root, root / "cifar10" / "plain_text", root / "cifar10", root / "plain_text"]


def _batches_candidates(root: Path) -> list[Path]:
    return [root / "cifar-10-batches-py", root]


def find_source(root: Path) -> tuple[str, Path]:
    """Return ("parquet" | "batches", directory) for the first source found."""
    for d in _parquet_candidates(root):
        if sorted(d.glob("train-*.parquet")):
            return "parquet", d
    for d in _batches_candidates(root):
        if (d / "data_batch_1").is_file():
            return "batches", d
    return "", root


def _download(root: Path) -> Path | None:
    existed = root.exists()
    try:
        import torchvision

        torchvision.datasets.CIFAR10(str(root), train=True, download=True)
    except Exception:  # no network, unwritable dir: reported by the caller
        if not existed:  # leave nothing half-written behind
            shutil.rmtree(root, ignore_errors=True)
        return None
    d = root / "cifar-10-batches-py"
    return d if (d / "data_batch_1").is_file() else None


def locate(root: Path) -> tuple[str, Path]:
    """The format and directory of CIFAR-10 under `root`, downloaded there if it is
    nowhere (unless $RAYSWEEP_OFFLINE=1); a UsageError saying where it looked."""
    kind, where = find_source(root)
    if kind:
        return kind, where
    offline = os.environ.get(OFFLINE_ENV) == "1"
    downloaded = None if offline else _download(root)
    if downloaded:
        return "batches", downloaded
    tried = ", ".join(str(d) for d in _parquet_candidates(root)[:2])
    download = f"no download ({OFFLINE_ENV}=1)" if offline else "a torchvision download failed"
    raise UsageError(
        f"no CIFAR-10 found: looked for train-*.parquet in {tried} and for "
        f"cifar-10-batches-py in {root}, and {download}; "
        f"pass --data-dir DIR or set {DATA_DIR_ENV}=DIR (e.g. ../shared/data)"
    )


def _batch_files(directory: Path, split: str) -> list[Path]:
    names = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
    return [directory / n for n in names.get(split, [])]  # no validation batches


def _read_batches(directory: Path, split: str) -> Listing:
    """The official pickled format: already pixels, (N, 3 * 32 * 32) per batch file."""
    names, labels = [], []
    items: list[ImageItem] = []
    for path in _batch_files(directory, split):
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="latin1")
        images = np.asarray(batch["data"], np.uint8).reshape(-1, 3, 32, 32) \
            .transpose(0, 2, 3, 1)
        names += [f"{path} image {i}" for i in range(len(images))]
        items += list(images)
        labels.append(np.asarray(batch["labels"], np.int64))
    return Listing(names, items, np.concatenate(labels), CLASS_NAMES)
