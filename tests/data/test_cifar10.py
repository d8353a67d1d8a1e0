"""CIFAR-10: where it is found, its decoding (Parquet and the pickled batches
alike), its test split, and a node without the cache."""

import pickle
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipelines.data.cache import CACHE_DIR_ENV
from pipelines.data.cifar10 import CLASS_NAMES, Cifar10, find_source
from pipelines.data.images import open_split
from pipelines.errors import UsageError
from tests.conftest import data_dir
from tests.digits import write_digits_parquet


def test_shared_data_decodes_to_uint8_images(cifar_cache):
    data = open_split(cifar_cache)
    assert data.images.shape == (50_000, 32, 32, 3) and data.images.dtype == np.uint8
    assert isinstance(data.images, np.memmap)  # shared through the page cache, not copied
    assert np.bincount(data.labels).tolist() == [5000] * 10
    # the README's per-channel mean of the train split
    assert data.info.mean == pytest.approx([0.491, 0.482, 0.447], abs=0.003)
    assert data.info.class_names == CLASS_NAMES  # from the Parquet files' metadata
    assert (data.info.channels, data.info.image_size) == (3, (32, 32))
    assert cifar_cache.where.startswith("cifar10:") and cifar_cache.sizes == (45_000, 5_000)


def test_the_test_split_is_read_with_the_training_images_statistics(cifar_cache):
    test = Cifar10().test_data(str(data_dir()))
    assert test is not None and test.images.shape == (10_000, 32, 32, 3)
    assert len(test.train_idx) == 0 and len(test.val_idx) == 10_000
    assert np.bincount(test.labels).tolist() == [1000] * 10
    assert test.info == cifar_cache.info  # normalised as the model was trained


def _small_parquet(tmp_path, n, folder):
    source = next(data_dir().rglob("train-*.parquet"))
    table = pq.read_table(source).slice(0, n)
    folder.mkdir(parents=True)
    pq.write_table(table, folder / "train-00000-of-00001.parquet")
    return table


def test_parquet_under_a_candidate_folder_is_found_and_decoded_once(tmp_path, monkeypatch,
                                                                    capsys):
    table = _small_parquet(tmp_path, 40, tmp_path / "mydata" / "cifar10" / "plain_text")
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    spec = Cifar10().prepare(str(tmp_path / "mydata"), None, None, 0)
    data = open_split(spec)
    assert data.images.shape == (40, 32, 32, 3)
    assert data.labels.tolist() == table.column("label").to_pylist()
    assert "decoding 40 images" in capsys.readouterr().err
    again = Cifar10().prepare(str(tmp_path / "mydata"), None, None, 0)
    assert again.cache == spec.cache and "decoding" not in capsys.readouterr().err


def test_cifar_batches_format_is_found(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "data_batch_1").write_bytes(b"")
    assert find_source(tmp_path) == ("batches", folder)


def test_missing_data_says_what_was_tried(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    missing = tmp_path / "nowhere"
    with pytest.raises(UsageError) as err:
        Cifar10().prepare(str(missing), None, None, 0)
    message = str(err.value)
    assert "train-*.parquet" in message and "--data-dir" in message and str(missing) in message
    assert "RAYSWEEP_OFFLINE=1" in message
    assert not missing.exists()


def test_a_node_without_the_cache_decodes_its_own(tmp_path, monkeypatch):
    _small_parquet(tmp_path, 200, tmp_path / "d")
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "driver-cache"))
    spec = Cifar10().prepare(str(tmp_path / "d"), 20, 10, 0)
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "node-cache"))  # another machine
    shutil.rmtree(tmp_path / "driver-cache")
    split = open_split(spec)
    assert len(split.train_idx) == 20 and len(split.val_idx) == 10
    assert any((tmp_path / "node-cache").rglob("images.npy"))


def test_torchvision_batches_decode_to_the_same_images(tmp_path, monkeypatch, cifar_cache):
    """cifar-10-batches-py (the official pickled format) gives the same arrays."""
    pool = open_split(cifar_cache)
    images, labels = pool.images, pool.labels
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for i in range(5):
        part = slice(10 * i, 10 * (i + 1))
        batch = {"data": images[part].transpose(0, 3, 1, 2).reshape(10, -1),
                 "labels": labels[part].tolist()}
        (folder / f"data_batch_{i + 1}").write_bytes(pickle.dumps(batch))
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    spec = Cifar10().prepare(str(tmp_path), None, None, 0)
    decoded = open_split(spec)
    assert spec.where == f"cifar10:{folder}"
    assert np.array_equal(decoded.images, images[:50])
    assert np.array_equal(decoded.labels, labels[:50])
    assert decoded.info.class_names == CLASS_NAMES
    assert Cifar10().test_data(str(tmp_path)) is None  # no test_batch


def test_a_damaged_parquet_file_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    broken = tmp_path / "d" / "train-00000-of-00001.parquet"
    broken.parent.mkdir()
    broken.write_bytes(np.random.default_rng(0).bytes(4096))  # a failed download, say
    with pytest.raises(UsageError, match=f"^{broken} is not a readable Parquet file"):
        Cifar10().prepare(str(tmp_path / "d"), None, None, 0)
    assert not (tmp_path / "cache").exists()


def test_parquet_without_the_label_column_names_it_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    write_digits_parquet(tmp_path / "d", 20, image="img", label="y")  # not CIFAR-10's columns
    with pytest.raises(UsageError) as err:
        Cifar10().prepare(str(tmp_path / "d"), None, None, 0)
    assert str(err.value) == (f"{tmp_path / 'd' / 'train-00000-of-00001.parquet'} has no "
                              f"column 'label' (its columns: img, y); CIFAR-10's files have "
                              f"columns img and label; for other data, give a sweep "
                              f"data=ParquetImages(folder, label='<column>')")
