"""Segmentation data: a folder of image/mask pairs, decoded once per machine,
split by whole image (slice) into training and validation.

The folder holds `images/` and `masks/` with the same file names (PNG, TIFF
or JPEG). Images are grayscale or RGB, all one size; a mask's pixel values
are mapped to class indices by the dataset's `class_values` (each pixel to
the nearest, so slightly lossy masks still map). ISBI 2012 ships as
`isbi2012_membrane/` with 0 = membrane and 255 = cell interior.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipelines.data.cache import cache_root, files_fingerprint, resolve_data_dir, save_atomic
from pipelines.errors import UsageError

if TYPE_CHECKING:  # PIL is imported where images are decoded, not with this module
    from PIL import Image

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")


@dataclass(frozen=True)
class SegDataset:
    """What a segmentation sweep trains on (a sweep's `data`)."""

    folder: str  # under the data directory, or absolute
    class_names: tuple[str, ...] = ("background", "foreground")
    class_values: tuple[int, ...] = (0, 255)  # the mask value of each class

    def __post_init__(self) -> None:
        if len(self.class_names) != len(self.class_values) or len(self.class_names) < 2:
            raise ValueError("a SegDataset needs at least 2 classes, one name per value")


@dataclass(frozen=True)
class SegSpec:
    """A trial's data, as Tune ships it: where the cache is and how to split it."""

    cache_dir: str  # images.npy (N, C, H, W) uint8 and masks.npy (N, H, W) uint8
    source: str  # the folder it was decoded from (re-decoded on a node without the cache)
    dataset: SegDataset
    train_size: int  # images (slices) for training
    val_size: int  # images held out for validation
    seed: int


@dataclass
class SegData:
    images: np.ndarray  # (N, C, H, W) uint8
    masks: np.ndarray  # (N, H, W) uint8 class indices
    train_idx: np.ndarray
    val_idx: np.ndarray
    class_names: tuple[str, ...]


def _pairs(folder: Path) -> list[tuple[Path, Path]]:
    images_dir, masks_dir = folder / "images", folder / "masks"
    if not images_dir.is_dir() or not masks_dir.is_dir():
        raise UsageError(f"{folder} needs images/ and masks/ folders with the same file "
                         f"names; check --data-dir")
    images = {p.name: p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    masks = {p.name: p for p in masks_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    unpaired = sorted(set(images) ^ set(masks))
    if unpaired:
        raise UsageError(f"{folder}: {len(unpaired)} file(s) without a partner in images/ "
                         f"and masks/, e.g. {unpaired[0]}; every image needs a same-named mask")
    if not images:
        raise UsageError(f"{folder}/images holds no {', '.join(IMAGE_SUFFIXES)} files")
    return [(images[n], masks[n]) for n in sorted(images, key=_natural)]


def _natural(name: str) -> tuple[int, int, str]:
    # numbered files (1.png, 2.png, ..., 10.png) in numeric order, before any others
    stem = Path(name).stem
    return (0, int(stem), name) if stem.isdigit() else (1, 0, name)


def load_pairs(folder: Path, dataset: SegDataset) -> tuple[np.ndarray, np.ndarray]:
    """Decode every pair: images (N, C, H, W) uint8, masks (N, H, W) class indices."""
    from PIL import Image

    images, masks = [], []
    values = np.asarray(dataset.class_values, dtype=np.int16)
    for image_path, mask_path in _pairs(folder):
        with Image.open(image_path) as im:
            image = _as_uint8(im, image_path)
        with Image.open(mask_path) as im:
            mask = np.asarray(im.convert("L")).astype(np.int16)
        if image.shape[:2] != mask.shape:
            raise UsageError(f"{mask_path} is {mask.shape[1]}x{mask.shape[0]} but its image "
                             f"is {image.shape[1]}x{image.shape[0]}")
        images.append(image[None] if image.ndim == 2 else image.transpose(2, 0, 1))
        masks.append(np.abs(mask[..., None] - values).argmin(-1).astype(np.uint8))
    shapes = {i.shape for i in images}
    if len(shapes) > 1:
        raise UsageError(f"{folder}: images differ in size or channels ({sorted(shapes)}); "
                         f"this loader needs one size")
    return np.stack(images), np.stack(masks)


def _as_uint8(im: Image.Image, path: Path) -> np.ndarray:
    """8-bit grayscale or RGB; 16-bit grayscale is scaled down, not clipped."""
    if im.mode.startswith("I;16") or im.mode == "I":
        return (np.asarray(im, dtype=np.float64) / 65535 * 255).round().astype(np.uint8)
    if im.mode == "F":
        raise UsageError(f"{path} is a floating-point image; convert it to 8 or 16 bits")
    return np.asarray(im.convert("L" if im.mode in ("L", "1", "LA") else "RGB"))


def _fingerprint(folder: Path, dataset: SegDataset) -> str:
    return files_fingerprint(repr((dataset.class_values,)),
                             [f for pair in _pairs(folder) for f in pair])


def locate(data_dir: str | None, dataset: SegDataset) -> Path:
    folder = Path(dataset.folder)
    return folder if folder.is_absolute() else resolve_data_dir(data_dir) / folder


def ensure_cache(folder: Path, dataset: SegDataset) -> Path:
    """Decode the folder once per machine; return the cache directory."""
    target = cache_root() / f"seg-{folder.name}-{_fingerprint(folder, dataset)}"
    if not (target / "images.npy").is_file():
        print(f"decoding {folder} into {target} (once per machine)...", file=sys.stderr,
              flush=True)
        images, masks = load_pairs(folder, dataset)
        target.mkdir(parents=True, exist_ok=True)
        save_atomic(target / "masks.npy", masks)
        save_atomic(target / "images.npy", images)  # written last: marks the cache done
    return target


def split_slices(n: int, train_size: int, val_size: int,
                 seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded split of n whole images: no image in both."""
    if train_size < 1 or val_size < 1 or train_size + val_size > n:
        raise UsageError(f"train_size={train_size} + val_size={val_size} images: need at "
                         f"least 1 of each and at most {n} together; lower --train-size "
                         f"or --val-size")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[val_size:val_size + train_size]), np.sort(order[:val_size])


def open_seg(spec: SegSpec) -> SegData:
    """Open the cached arrays (decoding them first on a node without them) and split."""
    cache = Path(spec.cache_dir)
    if not (cache / "images.npy").is_file():
        cache = ensure_cache(Path(spec.source), spec.dataset)
    images = np.load(cache / "images.npy", mmap_mode="r")
    masks = np.load(cache / "masks.npy", mmap_mode="r")
    train_idx, val_idx = split_slices(len(images), spec.train_size, spec.val_size, spec.seed)
    return SegData(images, masks, train_idx, val_idx, spec.dataset.class_names)


def prepare(data_dir: str | None, dataset: SegDataset, train_size: int, val_size: int,
            seed: int) -> SegSpec:
    """The driver's side: decode the folder once per machine and check the split."""
    folder = locate(data_dir, dataset)
    if not folder.is_dir():
        raise UsageError(f"no {dataset.folder} in {folder.parent}; point --data-dir at "
                         f"the directory that holds it")
    spec = SegSpec(str(ensure_cache(folder, dataset)), str(folder), dataset, train_size,
                   val_size, seed)
    open_seg(spec)
    return spec
