"""A trial's data: found, decoded once per machine into a shared uint8 cache,
and split. CIFAR-10 (cifar10) and folders of images and masks (seg_folder)."""

from pipelines.data.cache import DATA_DIR_ENV, DEFAULT_DATA_DIR, cache_root, resolve_data_dir
from pipelines.data.cifar10 import (
    MEAN,
    NUM_CLASSES,
    STD,
    CachedSplit,
    DataSpec,
    TrainValData,
    ensure_cache,
    open_split,
)
from pipelines.data.seg_folder import SegData, SegDataset, SegSpec, open_seg

__all__ = [
    "DEFAULT_DATA_DIR", "MEAN", "NUM_CLASSES", "STD", "CachedSplit",
    "DATA_DIR_ENV", "DataSpec", "SegData", "SegDataset", "SegSpec", "TrainValData",
    "cache_root", "ensure_cache", "open_seg", "open_split", "resolve_data_dir",
]
