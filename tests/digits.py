"""Real non-CIFAR image data for tests: scikit-learn's handwritten digits (1,797
8x8 grayscale images, values 0..16, scaled here to 0..255 uint8), written as
an image folder or as Hugging Face-style Parquet, in subsets as small as a
test needs."""

from __future__ import annotations

import functools
import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

CLASS_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def digits(n: int | None = None, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 8, 8) uint8 and labels (N,) int64: the digits from `offset`, n of
    them (None: all the rest)."""
    all_images, all_labels = _load()
    end = None if n is None else offset + n
    return all_images[offset:end], all_labels[offset:end]


@functools.lru_cache(maxsize=1)
def _load() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (d.images * 255 / 16).round().astype(np.uint8)
    images.flags.writeable = False  # shared by every caller
    return images, d.target.astype(np.int64)


def write_digits_folder(root: Path, n: int | None = None, offset: int = 0) -> Path:
    """An ImageFolder: root/<digit>/<i>.png (one grayscale PNG per image); returns root."""
    images, labels = digits(n, offset)
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{offset + i}.png")
    return root


def png_bytes(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return out.getvalue()


def write_digits_parquet(root: Path, n: int | None = None, test: int = 0,
                         image: str = "image", label: str = "digit",
                         class_names: bool = True) -> Path:
    """Hugging Face-style Parquet: train-00000-of-00001.parquet with the first n
    digits (+ test-00000-of-00001.parquet with the next `test`), an `image` column
    of {bytes, path} structs and a `digit` label column, and in the schema the
    metadata the `datasets` library writes (with the class names, if
    `class_names`); returns root."""
    root.mkdir(parents=True, exist_ok=True)
    train_images, train_labels = digits(n)
    splits = {"train": (train_images, train_labels)}
    if test:
        splits["test"] = digits(test, offset=len(train_labels))
    features = {image: {"_type": "Image"},
                label: {"names": list(CLASS_NAMES), "_type": "ClassLabel"} if class_names
                else {"dtype": "int64", "_type": "Value"}}
    metadata = {b"huggingface": json.dumps({"info": {"features": features}}).encode()}
    for split, (images, labels) in splits.items():
        cells = [{"bytes": png_bytes(im), "path": f"{i}.png"} for i, im in enumerate(images)]
        table = pa.table({image: cells, label: labels}).replace_schema_metadata(metadata)
        pq.write_table(table, root / f"{split}-00000-of-00001.parquet")
    return root
