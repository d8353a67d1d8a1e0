"""Segmentation data: a folder of image/mask pairs, decoded once per machine,
split by whole image (slice) into training and validation, or validated on a
second folder of the same layout.

A folder holds `images/` and `masks/` with the same file names (PNG, JPEG,
TIFF, ...: image_decode.IMAGE_SUFFIXES). Images are grayscale or RGB, all one
size; how a mask's pixels map to class indices is the dataset's mask coding
(seg_masks: grey levels, class indices or colours, and an optional ignore
value). ISBI 2012 ships as `isbi2012_membrane/` with 0 = membrane and 255 =
cell interior.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.data.cache import (
    cache_root,
    files_fingerprint,
    resolve_data_dir,
    resolve_path,
    save_atomic,
)
from pipelines.data.image_decode import IMAGE_SUFFIXES, as_uint8, open_image
from pipelines.data.seg_masks import IGNORE, ClassValues, MaskCoding, MaskValue
from pipelines.errors import UsageError

VAL_FRACTION = 0.1  # of the folder's images, held out when neither a size nor a folder is given


@dataclass(frozen=True)
class SegDataset:
    """What a segmentation sweep trains on (a sweep's `data`): a folder, how its
    masks code the classes, and optionally a folder to validate on."""

    folder: str  # under the data directory, or absolute
    class_names: tuple[str, ...] = ("background", "foreground")
    # each class's mask value: a grey level ("values"; None: evenly spaced over 0..255, so
    # 0 and 255 for two classes) or an (r, g, b) colour ("rgb"); None for "index"
    class_values: ClassValues | None = None
    mask_mode: str = "values"  # values | index | rgb (seg_masks.MASK_MODES)
    # a mask value (colour for "rgb") that is no class: its pixels count in no loss or metric
    ignore_index: MaskValue | None = None
    val_folder: str | None = None  # images/ + masks/ to validate on; None: split from `folder`

    def __post_init__(self) -> None:
        # tuples however given: the dataset travels in the trials' hashed, pickled data spec
        object.__setattr__(self, "class_names", tuple(self.class_names))
        object.__setattr__(self, "class_values", _tuples(self.class_values))
        object.__setattr__(self, "ignore_index", _tuples(self.ignore_index))
        self.coding.check()

    @property
    def coding(self) -> MaskCoding:
        """How the masks code the classes (seg_masks), which decodes them."""
        return MaskCoding(self.mask_mode, len(self.class_names), self.class_values,
                          self.ignore_index)


def _tuples(value: Any) -> Any:
    return tuple(map(_tuples, value)) if isinstance(value, (list, tuple)) else value


@dataclass(frozen=True)
class SegSpec:
    """A trial's data, as Tune ships it: where the cache is and how to split it."""

    # images.npy (N, C, H, W) uint8 and masks.npy (N, H, W) uint8 class indices (IGNORE:
    # ignored): the training folder's `pool_size` images, then any validation folder's
    cache_dir: str
    source: str  # the training folder (re-decoded on a node without the cache)
    dataset: SegDataset
    train_size: int  # images (slices) for training
    val_size: int  # images for validation
    seed: int
    pool_size: int  # images in the training folder
    image_shape: tuple[int, int, int]  # (C, H, W) of every image
    val_source: str | None = None  # the validation folder, if one is given

    def record(self) -> dict[str, Any]:
        """run.json's "data" section: where the images came from, how many of them
        were used, and what they are."""
        channels, height, width = self.image_shape
        return {"source": self.source, "val_source": self.val_source,
                "train_size": self.train_size, "val_size": self.val_size,
                "class_names": list(self.dataset.class_names), "channels": channels,
                "image_size": [height, width], "mask_mode": self.dataset.mask_mode}


@dataclass
class SegData:
    images: np.ndarray  # (N, C, H, W) uint8
    masks: np.ndarray  # (N, H, W) uint8 class indices
    train_idx: np.ndarray
    val_idx: np.ndarray
    class_names: tuple[str, ...]
    ignore_index: int | None = None  # the masks' value at ignored pixels; None: there are none


def _pairs(folder: Path) -> list[tuple[Path, Path]]:
    """The folder's (image, mask) files, in natural order of their names."""
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
    images, masks = [], []
    for image_path, mask_path in _pairs(folder):
        with open_image(str(image_path), image_path) as im:
            image = as_uint8(im, str(image_path))
        with open_image(str(mask_path), mask_path, load=True) as im:
            mask = dataset.coding.decode(im, mask_path)
        if image.shape[:2] != mask.shape:
            raise UsageError(f"{mask_path} is {mask.shape[1]}x{mask.shape[0]} but its image "
                             f"is {image.shape[1]}x{image.shape[0]}")
        images.append(image[None] if image.ndim == 2 else image.transpose(2, 0, 1))
        masks.append(mask)
    shapes = {i.shape for i in images}
    if len(shapes) > 1:
        raise UsageError(f"{folder}: images differ in size or channels ({sorted(shapes)}); "
                         f"this loader needs one size")
    return np.stack(images), np.stack(masks)


def _fingerprint(folders: list[Path], dataset: SegDataset) -> str:
    # the whole coding: the number of classes decides which index values are valid
    return files_fingerprint(repr(dataset.coding),
                             [f for folder in folders for pair in _pairs(folder) for f in pair])


def locate(data_dir: str | None, folder: str) -> Path:
    """`folder` if absolute, else under the data directory; a UsageError if missing."""
    path = resolve_path(folder, resolve_data_dir(data_dir))
    if not path.is_dir():
        raise UsageError(f"no {folder} in {path.parent}; point --data-dir at the directory "
                         f"that holds it, or give an absolute path")
    return path


def ensure_cache(folder: Path, dataset: SegDataset, val_folder: Path | None = None) -> Path:
    """Decode the folder (then `val_folder`'s images after its own) once per machine;
    return the cache directory."""
    folders = [folder] if val_folder is None else [folder, val_folder]
    target = cache_root() / f"seg-{folder.name}-{_fingerprint(folders, dataset)}"
    if not (target / "images.npy").is_file():
        print(f"decoding {' and '.join(map(str, folders))} into {target} (once per "
              f"machine)...", file=sys.stderr, flush=True)
        decoded = [load_pairs(f, dataset) for f in folders]
        if len({images.shape[1:] for images, _ in decoded}) > 1:
            raise UsageError(f"{val_folder}'s images are {decoded[1][0].shape[1:]} (C, H, W) "
                             f"but {folder}'s are {decoded[0][0].shape[1:]}; they need one size")
        target.mkdir(parents=True, exist_ok=True)
        save_atomic(target / "masks.npy", np.concatenate([m for _, m in decoded]))
        # written last: marks the cache done
        save_atomic(target / "images.npy", np.concatenate([i for i, _ in decoded]))
    return target


def split_sizes(pool: int, val_pool: int, train_size: int | None,
                val_size: int | None) -> tuple[int, int]:
    """(train_size, val_size) as used, of `pool` images and `val_pool` images of a
    validation folder (0: none, validation is carved from the pool). None: all the
    rest for training; all of the validation folder, else 10% of the pool (at least 1)."""
    carve = val_pool == 0
    if val_size is None:
        val_size = max(1, round(pool * VAL_FRACTION)) if carve else val_pool
    if train_size is None:
        train_size = pool - val_size if carve else pool
    if carve and (train_size < 1 or val_size < 1 or train_size + val_size > pool):
        raise UsageError(f"train_size={train_size} + val_size={val_size} images: need at "
                         f"least 1 of each and at most {pool} together; lower --train-size "
                         f"or --val-size")
    if not carve and not (1 <= train_size <= pool and 1 <= val_size <= val_pool):
        raise UsageError(f"train_size={train_size} of {pool} training images, val_size="
                         f"{val_size} of {val_pool} validation images: need 1 to all of "
                         f"each; lower --train-size or --val-size")
    return train_size, val_size


def split_slices(n: int, train_size: int | None, val_size: int | None, seed: int,
                 val_pool: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded split of whole images, no image in both: training images of the
    first `n`, validation images carved from them too, or drawn from the `val_pool`
    images after them (a validation folder's). Sizes as `split_sizes`."""
    train_size, val_size = split_sizes(n, val_pool, train_size, val_size)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    if val_pool == 0:
        return np.sort(order[val_size:val_size + train_size]), np.sort(order[:val_size])
    return np.sort(order[:train_size]), n + np.sort(rng.permutation(val_pool)[:val_size])


def open_seg(spec: SegSpec) -> SegData:
    """Open the cached arrays (decoding them first on a node without them) and split."""
    cache = Path(spec.cache_dir)
    if not (cache / "images.npy").is_file():
        val_folder = None if spec.val_source is None else Path(spec.val_source)
        cache = ensure_cache(Path(spec.source), spec.dataset, val_folder)
    images = np.load(cache / "images.npy", mmap_mode="r")
    masks = np.load(cache / "masks.npy", mmap_mode="r")
    train_idx, val_idx = split_slices(spec.pool_size, spec.train_size, spec.val_size,
                                      spec.seed, len(images) - spec.pool_size)
    ignore = None if spec.dataset.ignore_index is None else IGNORE
    return SegData(images, masks, train_idx, val_idx, spec.dataset.class_names, ignore)


def prepare(data_dir: str | None, dataset: SegDataset, train_size: int | None,
            val_size: int | None, seed: int) -> SegSpec:
    """The driver's side: decode the folder(s) once per machine and fix the split's
    sizes (None: see `split_sizes`)."""
    folder = locate(data_dir, dataset.folder)
    val_folder = None if dataset.val_folder is None else locate(data_dir, dataset.val_folder)
    cache = ensure_cache(folder, dataset, val_folder)
    images = np.load(cache / "images.npy", mmap_mode="r")
    pool = len(_pairs(folder))
    train_size, val_size = split_sizes(pool, len(images) - pool, train_size, val_size)
    channels, height, width = images.shape[1:]
    return SegSpec(str(cache), str(folder), dataset, train_size=train_size, val_size=val_size,
                   seed=seed, pool_size=pool, image_shape=(channels, height, width),
                   val_source=None if val_folder is None else str(val_folder))
