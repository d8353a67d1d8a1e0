"""Images in Hugging Face-style Parquet files: `train-*.parquet`, and optionally
`validation-*.parquet` (or `valid-*`, `val-*`) and `test-*.parquet`, in one folder.

The image column holds `{bytes, path}` structs (the `datasets` library's Image
feature) or raw encoded bytes; the label column holds integer class ids. The
class names come from the schema's Hugging Face metadata (a ClassLabel's
`names`) when it has them, else they are "0" .. "K-1".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pipelines.data.image_decode import ImageItem, Listing
from pipelines.data.image_source import ImageSource
from pipelines.errors import UsageError

FILE_PREFIXES = {"train": ("train",), "val": ("validation", "valid", "val"), "test": ("test",)}
HF_METADATA = b"huggingface"  # the schema metadata key the `datasets` library writes


@dataclass(frozen=True)
class ParquetImages(ImageSource):
    """A folder of Parquet files (see the module's docstring), e.g.
    `ParquetImages("fashion", image="image", label="label")`."""

    root: str  # absolute, or under the data directory; `~` is expanded
    image: str = "img"  # the image column
    label: str = "label"  # the label column
    image_size: tuple[int, int] | None = None  # (H, W) to resize to; None: all one size

    kind: ClassVar[str] = "parquet"
    test_layout: ClassVar[str] = "test-*.parquet"
    # how to name another column, for a file without this one ({field}: image or label)
    column_fix: ClassVar[str] = "pass ParquetImages(..., {field}='<column>')"

    def locate(self, data_dir: Path) -> Path:
        return self.resolve_folder(self.root, data_dir, "Parquet folder",
                                   "the folder with train-*.parquet")

    def split_files(self, data_dir: Path, split: str) -> list[Path]:
        root = self.locate(data_dir)
        files = sorted(f for prefix in FILE_PREFIXES[split]
                       for f in root.glob(f"{prefix}-*.parquet"))
        if split == "train" and not files:
            raise UsageError(f"no train-*.parquet in {root}; name the training files "
                             f"train-<anything>.parquet")
        return files

    def read(self, data_dir: Path, split: str, class_names: tuple[str, ...] | None) -> Listing:
        tables = [(path, self._table(path)) for path in self.split_files(data_dir, split)]
        names = class_names or self._class_names(tables[0][0],
                                                 [t.column(self.label) for _, t in tables])
        labels, where = [], []
        items: list[ImageItem] = []
        for path, table in tables:
            labels.append(self._labels(table.column(self.label), path, len(names)))
            for row, cell in enumerate(table.column(self.image).to_pylist()):
                data = cell.get("bytes") if isinstance(cell, dict) else cell
                if not isinstance(data, bytes):
                    raise UsageError(f"{path} row {row}: column {self.image!r} holds no image "
                                     f"bytes; it needs encoded images ({{bytes, path}} structs "
                                     f"or binary)")
                items.append(data)
                where.append(f"{path} row {row}")
        return Listing(where, items, np.concatenate(labels), names)

    def _table(self, path: Path) -> Any:
        """`path`'s image and label columns (a pyarrow Table); a UsageError naming
        the file if it is no Parquet file or is damaged (truncated, overwritten)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path, columns=self._columns(path))
        except (pa.ArrowException, OSError) as e:  # ArrowInvalid: no footer, bad pages
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise UsageError(f"{path} is not a readable Parquet file ({reason}); replace it "
                             f"with an intact copy or move it out of {path.parent}") from None

    def _columns(self, path: Path) -> list[str]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pq.read_schema(path)
        for column, field in ((self.image, "image"), (self.label, "label")):
            if column not in schema.names:
                raise UsageError(f"{path} has no column {column!r} (its columns: "
                                 f"{', '.join(schema.names)}); "
                                 f"{self.column_fix.format(field=field)}")
        if not pa.types.is_integer(schema.field(self.label).type):
            raise UsageError(f"{path}: column {self.label!r} is "
                             f"{schema.field(self.label).type}, not integer class ids; "
                             f"name the label column with label='<column>'")
        return [self.image, self.label]

    def _labels(self, column: Any, path: Path, num_classes: int) -> np.ndarray:
        """The column's class ids, each checked to be one of the classes."""
        if column.null_count:
            raise UsageError(f"{path}: column {self.label!r} has {column.null_count} rows "
                             f"without a label; every image needs its class id")
        ids = column.to_numpy().astype(np.int64)
        bad = np.flatnonzero((ids < 0) | (ids >= num_classes))
        if len(bad):
            raise UsageError(f"{path} row {bad[0]}: label {ids[bad[0]]} is not a class id "
                             f"(0..{num_classes - 1}); is this split labelled?")
        return ids

    def _class_names(self, path: Path, labels: list[Any]) -> tuple[str, ...]:
        """The training split's class names: from `path`'s metadata, else "0".."K-1"
        for the largest label K-1 (or none, if a label is negative: _labels says so)."""
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        metadata = pq.read_schema(path).metadata or {}
        try:
            features = json.loads(metadata[HF_METADATA])["info"]["features"]
            return tuple(str(n) for n in features[self.label]["names"])
        except (KeyError, TypeError, ValueError):  # no metadata, or no class names in it
            largest = max((pc.max(column).as_py() for column in labels if len(column)),
                          default=-1)
            return tuple(str(i) for i in range(int(largest) + 1))
