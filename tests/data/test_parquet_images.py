"""ParquetImages on real data that is not CIFAR-10: scikit-learn's digits as
Hugging Face-style Parquet with its own column names and class names."""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.data import ParquetImages, open_split
from pipelines.data.cache import CACHE_DIR_ENV
from pipelines.errors import UsageError
from tests.digits import CLASS_NAMES, digits, png_bytes, write_digits_parquet


def digits_parquet(root: str) -> ParquetImages:
    return ParquetImages(root, image="image", label="digit")  # write_digits_parquet's columns


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_struct_images_with_hf_class_names_and_a_test_split(tmp_path):
    write_digits_parquet(tmp_path / "pq", 300, test=60)
    source = digits_parquet("pq")
    spec = source.prepare(str(tmp_path), None, None, 0)
    data = open_split(spec)
    images, labels = digits(300)
    assert np.array_equal(data.images[..., 0], images)  # file order kept
    assert np.array_equal(data.labels, labels)
    assert data.info.class_names == CLASS_NAMES and data.info.channels == 1
    assert spec.where == f"parquet:{tmp_path / 'pq'}" and spec.sizes == (270, 30)
    test = source.test_data(str(tmp_path))
    assert test is not None and test.info == spec.info
    assert np.array_equal(test.images[..., 0], digits(60, offset=300)[0])


def test_without_metadata_the_classes_are_named_by_their_ids(tmp_path):
    images, labels = digits(100)
    pq.write_table(pa.table({"png": [png_bytes(im) for im in images], "y": labels}),
                   tmp_path / "train-0.parquet")  # raw bytes, no Hugging Face metadata
    data = open_split(ParquetImages(str(tmp_path), image="png", label="y")
                      .prepare(None, None, None, 0))
    assert data.info.class_names == tuple(str(d) for d in range(10))
    assert np.array_equal(data.images[..., 0], images)


def test_a_missing_column_names_the_columns_there_are(tmp_path):
    write_digits_parquet(tmp_path, 20)
    with pytest.raises(UsageError, match="has no column 'img' \\(its columns: image, digit\\); "
                                         "pass ParquetImages\\(..., image='<column>'\\)"):
        ParquetImages(str(tmp_path)).prepare(None, None, None, 0)
    with pytest.raises(UsageError, match="has no column 'label' \\(its columns: image, digit\\)"):
        ParquetImages(str(tmp_path), image="image").prepare(None, None, None, 0)


def test_a_validation_file_is_the_validation_split(tmp_path):
    write_digits_parquet(tmp_path, 200)
    images, labels = digits(50, offset=200)
    table = pq.read_table(tmp_path / "train-00000-of-00001.parquet")
    cells = [{"bytes": png_bytes(im), "path": None} for im in images]
    pq.write_table(pa.table({"image": cells, "digit": labels}, schema=table.schema),
                   tmp_path / "validation-00000-of-00001.parquet")
    spec = digits_parquet(str(tmp_path)).prepare(None, None, 20, 0)
    data = open_split(spec)
    assert spec.sizes == (200, 20) and data.val_idx.min() >= 200
    assert np.array_equal(data.images[200:, ..., 0], images)


def test_an_unlabelled_test_split_says_so(tmp_path):
    write_digits_parquet(tmp_path, 50)
    images, _ = digits(5, offset=50)
    pq.write_table(pa.table({"image": [png_bytes(im) for im in images],
                             "digit": np.full(5, -1)}), tmp_path / "test-0.parquet")
    source = digits_parquet(str(tmp_path))
    with pytest.raises(UsageError, match="test-0.parquet row 0: label -1 is not a class id "
                                         "\\(0..9\\); is this split labelled"):
        source.test_data(None)


def test_a_label_column_that_is_not_class_ids_is_refused(tmp_path):
    images, labels = digits(20)
    pq.write_table(pa.table({"img": [png_bytes(im) for im in images],
                             "label": [str(y) for y in labels]}), tmp_path / "train-0.parquet")
    with pytest.raises(UsageError, match="column 'label' is string, not integer class ids"):
        ParquetImages(str(tmp_path)).prepare(None, None, None, 0)



def _damaged(path: Path, how: str) -> None:
    """`path` as a failed copy or a bad disk leaves it: cut short, overwritten by
    other bytes, or its data pages garbled behind an intact footer."""
    data = path.read_bytes()
    noise = np.random.default_rng(0).bytes(len(data))
    half = len(data) // 2
    damaged = {"truncated": data[:half], "random bytes": noise,
               "garbled pages": data[:4] + noise[4:half] + data[half:]}  # 4: magic "PAR1"
    path.write_bytes(damaged[how])


@pytest.mark.parametrize("how", ["truncated", "random bytes", "garbled pages"])
def test_a_damaged_file_is_named_and_nothing_is_cached(tmp_path, cache, how):
    write_digits_parquet(tmp_path / "pq", 40)
    broken = tmp_path / "pq" / "train-00000-of-00001.parquet"
    _damaged(broken, how)
    with pytest.raises(UsageError) as err:
        digits_parquet(str(tmp_path / "pq")).prepare(None, None, None, 0)
    message = str(err.value)
    assert message.startswith(f"{broken} is not a readable Parquet file (")
    assert "replace it with an intact copy" in message and "\n" not in message
    assert not cache.exists()  # nothing decoded, nothing half-written


def test_a_label_column_named_but_missing_says_which_there_are(tmp_path):
    write_digits_parquet(tmp_path, 20)
    with pytest.raises(UsageError) as err:
        ParquetImages(str(tmp_path), image="image", label="target").prepare(None, None, None, 0)
    assert str(err.value) == (f"{tmp_path / 'train-00000-of-00001.parquet'} has no column "
                              f"'target' (its columns: image, digit); pass "
                              f"ParquetImages(..., label='<column>')")
