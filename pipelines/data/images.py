"""Classification data from any image source: what the classification task uses.

The driver calls `prepare` (the sweep's `data`: ImageFolder, ParquetImages or
Cifar10, None for CIFAR-10) and ships the DataSpec to the trials; each trial
calls `open_split`. The types live in image_source, where the sources can
build them without importing this module (which imports Cifar10 for its default).
"""

from __future__ import annotations

from pipelines.data.cifar10 import Cifar10
from pipelines.data.image_cache import ImageInfo
from pipelines.data.image_source import DataSpec, ImageSource, TrainValData, open_split
from pipelines.errors import UsageError

__all__ = ["DataSpec", "ImageInfo", "ImageSource", "TrainValData", "classification_source",
           "open_split", "prepare"]


def prepare(data_dir: str | None, source: ImageSource | None, train_size: int | None,
            val_size: int | None, seed: int) -> DataSpec:
    """The driver's side: decode `source`'s training pool once per machine and check
    that the split fits it; `source` None is CIFAR-10. Sizes None: every training
    image, and the source's own validation split or else a stratified 10%."""
    return classification_source(source).prepare(data_dir, train_size, val_size, seed)


def classification_source(data: object) -> ImageSource:
    """A classification sweep's `data` as its source (None: CIFAR-10); a UsageError
    for anything else."""
    if data is None:
        return Cifar10()
    if not isinstance(data, ImageSource):
        raise UsageError(f"a classification sweep's data is ImageFolder(...), "
                         f"ParquetImages(...) or Cifar10() (None: CIFAR-10), not "
                         f"{type(data).__name__}")
    return data
