"""A folder of images sorted into one subfolder per class (torchvision's
ImageFolder layout): `root/<class>/<image>`, class ids in sorted class-name order.

With `root/train/<class>/...`, the training images are there instead. Subfolders
named `val` and `test` of root are the validation and test splits (same
layout, class folders named as in training), never classes. Images are files
of image_decode.IMAGE_SUFFIXES (PNG, JPEG, BMP, WebP, TIFF), anywhere under
their class folder; hidden files and folders (a leading dot) are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from pipelines.data.cache import resolve_path
from pipelines.data.image_decode import IMAGE_SUFFIXES, ImageItem, Listing
from pipelines.data.image_source import ImageSource
from pipelines.errors import UsageError

SPLIT_FOLDERS = ("train", "val", "test")  # subfolders of root that are splits, not classes


@dataclass(frozen=True)
class ImageFolder(ImageSource):
    """Images in class folders (see the module's docstring), e.g.
    `ImageFolder("flowers")` for `<data dir>/flowers/<class>/*.jpg`."""

    root: str  # absolute, or under the data directory; `~` is expanded
    image_size: tuple[int, int] | None = None  # (H, W) to resize to; None: all one size
    val_dir: str | None = None  # a validation folder elsewhere (as root); None: root/val/

    kind: ClassVar[str] = "imagefolder"
    test_layout: ClassVar[str] = "test/<class>/<image>"

    def locate(self, data_dir: Path) -> Path:
        return self.resolve_folder(self.root, data_dir, "image folder",
                                   "a folder of class folders (root/<class>/<image>)")

    def split_files(self, data_dir: Path, split: str) -> list[Path]:
        folder = self._folder(data_dir, split)
        if folder is None:
            return []
        files = [f for _, images in self._classes(data_dir, folder) for f in images]
        if split == "train" and not files:
            raise UsageError(f"{folder} holds no images in class folders ({folder}/<class>/"
                             f"<image>, {'/'.join(IMAGE_SUFFIXES)})")
        return files

    def read(self, data_dir: Path, split: str, class_names: tuple[str, ...] | None) -> Listing:
        folder = self._folder(data_dir, split)
        assert folder is not None, f"no {split} folder: split_files said so"
        classes = self._classes(data_dir, folder)
        names = class_names or tuple(name for name, _ in classes)
        ids = {name: i for i, name in enumerate(names)}
        items: list[ImageItem] = []
        labels: list[int] = []
        for name, images in classes:
            if name not in ids:
                raise UsageError(f"{folder / name}: class {name!r} is not one of the training "
                                 f"classes ({', '.join(names)}); rename or remove it")
            if split == "train" and not images:
                raise UsageError(f"class folder {folder / name} holds no images; add some or "
                                 f"remove it")
            items += images
            labels += [ids[name]] * len(images)
        return Listing([str(f) for f in items], items, np.asarray(labels, np.int64), names)

    def _folder(self, data_dir: Path, split: str) -> Path | None:
        """The folder of `split`; None if there is none (for validation and test)."""
        root = self.locate(data_dir)
        if split == "train":
            return root / "train" if (root / "train").is_dir() else root
        if split == "val" and self.val_dir is not None:
            folder = resolve_path(self.val_dir, data_dir)
            if not folder.is_dir():
                raise UsageError(f"no validation folder {folder} (val_dir={self.val_dir!r}); "
                                 f"give an existing folder of class folders")
            return folder
        return root / split if (root / split).is_dir() else None

    def _classes(self, data_dir: Path, folder: Path) -> list[tuple[str, list[Path]]]:
        """(class name, its image files) per class folder of `folder`, sorted by name."""
        flat = folder == self.locate(data_dir)  # then train/, val/, test/ are splits
        return [(d.name, _images_under(d)) for d in sorted(folder.iterdir())
                if d.is_dir() and not d.name.startswith(".")
                and not (flat and d.name in SPLIT_FOLDERS)]


def _images_under(folder: Path) -> list[Path]:
    return sorted(f for f in folder.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES
                  and f.is_file() and not any(p.startswith(".") for p in
                                              f.relative_to(folder).parts))
