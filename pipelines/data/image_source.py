"""What every classification data source shares: the ImageSource base class
(a source says where its files are and how to list its images; decoding,
caching and splitting are done here, the same for all), the DataSpec that the
driver prepares and Tune ships to the trials, and the TrainValData a trial opens.

A source has a training split, and may have a validation split of its own and
a test split (read by `--final` alone). The training pool, its training images
followed by its own validation images, is decoded once per machine into one
cache entry; the test split into another, shaped like the pool (channels,
size) and normalised with the pool's statistics.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pipelines.data.cache import cache_root, files_fingerprint, resolve_data_dir, resolve_path
from pipelines.data.image_cache import CachedImages, ImageInfo, build
from pipelines.data.image_decode import Listing
from pipelines.data.splits import split_pool
from pipelines.errors import UsageError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class DataSpec:
    """A trial's data, small and picklable: Tune ships it to the trials instead of
    the arrays. The source itself travels too, to decode its files again on a node
    without the cache."""

    source: ImageSource
    data_dir: str  # absolute: where the source's relative folders are, on every node
    cache: str  # the training pool's cache entry on the driver's machine
    where: str  # what was decoded, "<kind>:<absolute directory>"
    train_size: int | None  # as asked: None = every training image
    val_size: int | None  # None = the source's own validation images, else 10% held out
    seed: int
    info: ImageInfo
    sizes: tuple[int, int]  # the training and validation images the split holds

    def record(self) -> dict[str, Any]:
        """run.json's "data" section."""
        return {"source": self.where, "train_size": self.sizes[0], "val_size": self.sizes[1],
                **self.info.to_json()}


@dataclass
class TrainValData:
    """The pool's images (N, H, W, C) uint8, memory-mapped, and labels (N,) int64,
    with the indices of each split."""

    images: np.ndarray
    labels: np.ndarray
    train_idx: np.ndarray
    val_idx: np.ndarray
    info: ImageInfo


class ImageSource(abc.ABC):
    """Where a classification sweep's images come from (a sweep's `data`). A source
    is a frozen dataclass: hashable and picklable. It implements `locate`,
    `split_files` and `read`; the rest is shared."""

    kind: ClassVar[str]  # names its cache entries and its record: "<kind>:<directory>"
    test_layout: ClassVar[str]  # where a test split would be, for --final's message
    image_size: tuple[int, int] | None = None  # (H, W) to resize to; None: as they are

    def __post_init__(self) -> None:
        # a tuple however given: the source is hashed, in the DataSpec the trials cache by
        object.__setattr__(self, "image_size", _image_size(self.image_size, type(self).__name__))

    def resolve_folder(self, path: str, data_dir: Path, kind: str, layout: str) -> Path:
        """`path` (see cache.resolve_path) if it is a folder; else a UsageError naming
        the `kind` of folder it should be and the `layout` it should hold."""
        folder = resolve_path(path, data_dir)
        if not folder.is_dir():
            raise UsageError(f"no {kind} {folder}; point {type(self).__name__} at {layout}, "
                             f"or --data-dir at the directory that holds {path}")
        return folder

    @abc.abstractmethod
    def locate(self, data_dir: Path) -> Path:
        """The directory this source reads (relative folders under `data_dir`); a
        UsageError saying what is missing if it is not there."""

    @abc.abstractmethod
    def split_files(self, data_dir: Path, split: str) -> list[Path]:
        """The files of `split` (one of SPLITS), which key its cache; [] if the source
        has no such split, a UsageError if it has no training images. Cheap: it runs
        on every prepare."""

    @abc.abstractmethod
    def read(self, data_dir: Path, split: str, class_names: tuple[str, ...] | None) -> Listing:
        """`split`'s images, not decoded yet, with labels; `class_names`: the training
        split's, which a validation or test split's labels must follow."""

    def prepare(self, data_dir: str | None, train_size: int | None, val_size: int | None,
                seed: int) -> DataSpec:
        """The driver's side: decode the training pool once per machine and split it
        (a split that does not fit the data fails here, not in every trial)."""
        root = resolve_data_dir(data_dir).resolve()
        cache, where = self.pool(root)
        info, train_images = cache.meta()
        train_idx, val_idx = split_pool(cache.open()[1], train_images, train_size, val_size,
                                        seed)
        return DataSpec(self, str(root), cache.directory, where, train_size, val_size, seed,
                        info, (len(train_idx), len(val_idx)))

    def pool(self, data_dir: Path) -> tuple[CachedImages, str]:
        """The training pool's cache entry (decoded first if this machine lacks it),
        and what it was decoded from."""
        where = self.locate(data_dir).resolve()
        own_val = self.split_files(data_dir, "val")
        files = self.split_files(data_dir, "train") + own_val
        target = cache_root() / f"{self.kind}-train-{files_fingerprint(repr(self), files)}"
        if not CachedImages(str(target)).exists():
            listing = self.read(data_dir, "train", None)
            if len(np.unique(listing.labels)) < 2:
                raise UsageError(f"{where} has images of one class only "
                                 f"({listing.class_names[listing.labels[0]]}); a classifier "
                                 f"needs at least two")
            train_images = len(listing)
            if own_val:
                listing = listing.then(self.read(data_dir, "val", listing.class_names))
            build(target, listing, train_images=train_images, size=self.image_size,
                  resize=self.image_size is not None, what=f" from {where}")
        return CachedImages(str(target)), f"{self.kind}:{where}"

    def test_data(self, data_dir: str | None) -> TrainValData | None:
        """The test split (decoded once per machine), every image in the validation
        role; None if the source has none."""
        root = resolve_data_dir(data_dir).resolve()
        files = self.split_files(root, "test")
        if not files:
            return None
        pool, where = self.pool(root)
        info, _ = pool.meta()
        key = files_fingerprint(f"{self!r}:{info}", files)
        target = cache_root() / f"{self.kind}-test-{key}"
        if not CachedImages(str(target)).exists():
            listing = self.read(root, "test", info.class_names)
            build(target, listing, train_images=0, size=self.image_size or info.image_size,
                  resize=self.image_size is not None, channels=info.channels, info=info,
                  what=f" of the test split of {where.split(':', 1)[1]}")
        images, labels = CachedImages(str(target)).open()
        return TrainValData(images, labels, np.array([], dtype=np.int64),
                            np.arange(len(labels)), info)


def _image_size(size: object, source: str) -> tuple[int, int] | None:
    """A source's `image_size` as a (H, W) tuple, or None; a UsageError if it is not
    two whole numbers of pixels, each at least 1."""
    if size is None:
        return None
    if (not isinstance(size, Sequence) or isinstance(size, str) or len(size) != 2
            or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 1
                       for n in size)):
        raise UsageError(f"{source}(image_size={size!r}): give (height, width) in pixels, each "
                         f"at least 1, e.g. image_size=(64, 64)")
    return int(size[0]), int(size[1])


def open_split(spec: DataSpec) -> TrainValData:
    """The trial's side: open the cached pool and split it. On a machine without the
    cache (another node of a cluster), decode it there first, from the same files."""
    cache = CachedImages(spec.cache)
    if not cache.exists():
        cache, _ = spec.source.pool(Path(spec.data_dir))
    images, labels = cache.open()
    info, train_images = cache.meta()
    train_idx, val_idx = split_pool(labels, train_images, spec.train_size, spec.val_size,
                                    spec.seed)
    return TrainValData(images, labels, train_idx, val_idx, info)
