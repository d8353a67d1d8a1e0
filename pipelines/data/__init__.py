"""A trial's data: found, decoded once per machine into a shared uint8 cache,
and split. Classification images from any source (images: ImageFolder,
ParquetImages, Cifar10) and folders of images and masks (seg_folder)."""

from typing import TYPE_CHECKING

from pipelines.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from pipelines.data.cache import DATA_DIR_ENV, DEFAULT_DATA_DIR, cache_root, resolve_data_dir
    from pipelines.data.cifar10 import Cifar10
    from pipelines.data.image_folder import ImageFolder
    from pipelines.data.images import (
        DataSpec,
        ImageInfo,
        ImageSource,
        TrainValData,
        classification_source,
        open_split,
        prepare,
    )
    from pipelines.data.parquet_images import ParquetImages
    from pipelines.data.seg_folder import SegData, SegDataset, SegSpec, open_seg

__all__ = [
    "DATA_DIR_ENV", "DEFAULT_DATA_DIR", "Cifar10", "DataSpec", "ImageFolder", "ImageInfo",
    "ImageSource", "ParquetImages", "SegData", "SegDataset", "SegSpec", "TrainValData",
    "cache_root", "classification_source", "open_seg", "open_split", "prepare",
    "resolve_data_dir",
]

__getattr__, __dir__ = lazy_exports(__name__)  # the names above load on first use
