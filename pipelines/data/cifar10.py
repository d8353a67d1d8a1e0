"""CIFAR-10: find it, decode it once per machine into a uint8 cache, split it.

Sources, in order: a directory of Hugging Face-style Parquet files
(`train-*.parquet` with `img{bytes,path}` and `label`), torchvision's
`cifar-10-batches-py`, and, failing both, a torchvision download. The decoded
arrays live in a per-machine cache (`$RAYSWEEP_CACHE_DIR`, default
`~/.cache/raysweep`) and are opened memory-mapped, so concurrent trials share
one copy through the page cache instead of each holding its own.
"""

from __future__ import annotations

import io
import os
import pickle
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipelines.data.cache import (
    DATA_DIR_ENV,
    cache_root,
    files_fingerprint,
    resolve_data_dir,
    save_atomic,
)
from pipelines.errors import UsageError

OFFLINE_ENV = "RAYSWEEP_OFFLINE"  # "1": never try a download (tests, air-gapped clusters)
NUM_CLASSES = 10
# Per-channel statistics of the CIFAR-10 training split, on the 0..1 scale.
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


@dataclass(frozen=True)
class CachedSplit:
    """Decoded images (N, 32, 32, 3) uint8 and labels (N,) int64, as .npy files."""

    images_path: str
    labels_path: str

    def open(self) -> tuple[np.ndarray, np.ndarray]:
        return np.load(self.images_path, mmap_mode="r"), np.load(self.labels_path)

    def exists(self) -> bool:
        return Path(self.images_path).is_file() and Path(self.labels_path).is_file()


@dataclass(frozen=True)
class DataSpec:
    """Everything a trial needs to rebuild its train/validation split: small and
    picklable, so it travels to Ray workers instead of the arrays."""

    cache: CachedSplit
    train_size: int
    val_size: int
    seed: int
    source: str  # "<kind>:<directory>", as ensure_cache returns it


@dataclass
class TrainValData:
    """The training pool (memory-mapped) with the indices of each split."""

    images: np.ndarray
    labels: np.ndarray
    train_idx: np.ndarray
    val_idx: np.ndarray


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


SPLITS = ("train", "test")  # the test split is read by pipelines.tuning.final_score alone


def _decode_parquet(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    import pyarrow.parquet as pq
    from PIL import Image

    images, labels = [], []
    for path in sorted(directory.glob(f"{split}-*.parquet")):
        table = pq.read_table(path, columns=["img", "label"])
        labels.append(table.column("label").to_numpy().astype(np.int64))
        for cell in table.column("img").to_pylist():
            img = Image.open(io.BytesIO(cell["bytes"])).convert("RGB")
            images.append(np.asarray(img, dtype=np.uint8))
    return np.stack(images), np.concatenate(labels)


def _batch_files(directory: Path, split: str) -> list[Path]:
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    return [directory / n for n in names]


def _decode_batches(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for path in _batch_files(directory, split):
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="latin1")  # the official CIFAR-10 format
        images.append(np.asarray(batch["data"], np.uint8).reshape(-1, 3, 32, 32))
        labels.append(np.asarray(batch["labels"], np.int64))
    return np.concatenate(images).transpose(0, 2, 3, 1).copy(), np.concatenate(labels)


def _split_files(kind: str, directory: Path, split: str) -> list[Path]:
    if kind == "parquet":
        return sorted(directory.glob(f"{split}-*.parquet"))
    return [f for f in _batch_files(directory, split) if f.is_file()]


def _fingerprint(kind: str, directory: Path, split: str) -> str:
    return files_fingerprint(kind, _split_files(kind, directory, split))


def ensure_cache(root: Path, split: str = "train") -> tuple[CachedSplit, str]:
    """Decode a split (the training pool by default) once per machine; return the
    cache and its source."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; one of {SPLITS}")
    kind, directory = locate(root)
    if not _split_files(kind, directory, split):
        raise UsageError(f"no CIFAR-10 {split} split in {directory}; it needs "
                         f"{split}-*.parquet or the {split} batches beside the training ones")
    target = cache_root() / f"cifar10-{split}-{_fingerprint(kind, directory, split)}"
    cached = CachedSplit(str(target / "images.npy"), str(target / "labels.npy"))
    if not cached.exists():
        print(f"decoding CIFAR-10 {split} from {directory} into {target} (once per "
              f"machine)...", file=sys.stderr, flush=True)
        decode = _decode_parquet if kind == "parquet" else _decode_batches
        images, labels = decode(directory, split)
        target.mkdir(parents=True, exist_ok=True)
        save_atomic(Path(cached.labels_path), labels)
        save_atomic(Path(cached.images_path), images)  # written last: marks the cache done
    return cached, f"{kind}:{directory}"


def stratified_split(labels: np.ndarray, train_size: int, val_size: int,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded, class-balanced train/validation indices with no overlap."""
    classes = np.unique(labels)
    for flag, size in (("--train-size", train_size), ("--val-size", val_size)):
        if size < len(classes):
            raise UsageError(f"{flag} {size} is smaller than the {len(classes)} classes; "
                             f"use at least {len(classes)}")
    rng = np.random.default_rng(seed)
    train, val = [], []
    for i, c in enumerate(classes):
        # the remainder of an uneven size goes to the first classes, one image each
        n_train = train_size // len(classes) + (i < train_size % len(classes))
        n_val = val_size // len(classes) + (i < val_size % len(classes))
        idx = rng.permutation(np.flatnonzero(labels == c))
        if n_val + n_train > len(idx):
            raise UsageError(
                f"train_size={train_size} + val_size={val_size} needs {n_train + n_val} "
                f"images of class {c}, only {len(idx)} exist; lower --train-size or --val-size"
            )
        val.append(idx[:n_val])
        train.append(idx[n_val:n_val + n_train])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def open_split(spec: DataSpec) -> TrainValData:
    """Open the cached pool and split it. On a machine without the cache (another
    node of a cluster), decode it there first, from the same source directory."""
    cache = spec.cache
    if not cache.exists():
        cache, _ = ensure_cache(Path(spec.source.split(":", 1)[1]))
    images, labels = cache.open()
    train_idx, val_idx = stratified_split(labels, spec.train_size, spec.val_size, spec.seed)
    return TrainValData(images, labels, train_idx, val_idx)


def prepare(data_dir: str | None, source: None, train_size: int, val_size: int,
            seed: int) -> DataSpec:
    """The driver's side: decode the training pool once per machine and check that
    the split fits it (a split that does not fails here, not in every trial);
    `source` is the sweep's `data`, None for CIFAR-10."""
    cache, found = ensure_cache(resolve_data_dir(data_dir))
    spec = DataSpec(cache, train_size, val_size, seed, found)
    open_split(spec)
    return spec
