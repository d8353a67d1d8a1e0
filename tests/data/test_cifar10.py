"""CIFAR-10 loading: sources, the per-machine cache, the stratified split."""

import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipelines.data.cache import CACHE_DIR_ENV
from pipelines.data.cifar10 import DataSpec, ensure_cache, find_source, open_split, stratified_split
from pipelines.errors import UsageError
from tests.conftest import data_dir


def test_shared_data_decodes_to_uint8_images(cifar_cache):
    cache, source = cifar_cache
    images, labels = cache.open()
    assert images.shape == (50_000, 32, 32, 3) and images.dtype == np.uint8
    assert isinstance(images, np.memmap)  # shared through the page cache, not copied
    assert np.bincount(labels).tolist() == [5000] * 10
    # the README's per-channel mean of the train split
    mean = images[::10].reshape(-1, 3).mean(0) / 255
    assert mean == pytest.approx([0.491, 0.482, 0.447], abs=0.003)
    assert source.startswith("parquet:")


def test_split_is_stratified_disjoint_and_seeded(cifar_cache):
    _, labels = cifar_cache[0].open()
    train, val = stratified_split(labels, 45_000, 5_000, seed=0)
    assert len(train) == 45_000 and len(val) == 5_000
    assert not set(train) & set(val)
    assert np.bincount(labels[val]).tolist() == [500] * 10
    again, _ = stratified_split(labels, 45_000, 5_000, seed=0)
    other, _ = stratified_split(labels, 45_000, 5_000, seed=1)
    assert np.array_equal(train, again) and not np.array_equal(train, other)


def test_uneven_sizes_are_met_exactly(cifar_cache):
    _, labels = cifar_cache[0].open()
    train, val = stratified_split(labels, 1005, 13, seed=0)
    assert len(train) == 1005 and len(val) == 13
    assert max(np.bincount(labels[val], minlength=10)) - min(
        np.bincount(labels[val], minlength=10)) == 1


@pytest.mark.parametrize("train_size,val_size,flag", [(1000, 5, "--val-size"),
                                                      (3, 100, "--train-size")])
def test_fewer_images_than_classes_is_a_usage_error(cifar_cache, train_size, val_size, flag):
    _, labels = cifar_cache[0].open()
    with pytest.raises(UsageError, match=f"{flag} .* smaller than the 10 classes"):
        stratified_split(labels, train_size, val_size, seed=0)


def test_split_larger_than_the_data_is_a_usage_error(cifar_cache):
    _, labels = cifar_cache[0].open()
    with pytest.raises(UsageError, match="lower --train-size"):
        stratified_split(labels, 50_000, 5_000, seed=0)


def test_small_parquet_dir_is_decoded_once(tmp_path, monkeypatch):
    source = next(data_dir().rglob("train-*.parquet"))
    table = pq.read_table(source).slice(0, 40)
    folder = tmp_path / "mydata" / "cifar10" / "plain_text"
    folder.mkdir(parents=True)
    pq.write_table(table, folder / "train-00000-of-00001.parquet")
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    cache, _ = ensure_cache(tmp_path / "mydata")
    images, labels = cache.open()
    assert images.shape == (40, 32, 32, 3)
    assert labels.tolist() == table.column("label").to_pylist()
    import pipelines.data.cifar10

    def must_not_decode(_):
        raise AssertionError("decoded twice")

    monkeypatch.setattr(pipelines.data.cifar10, "_decode_parquet", must_not_decode)
    cache_again, _ = ensure_cache(tmp_path / "mydata")
    assert cache_again == cache


def test_cifar_batches_format_is_found(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "data_batch_1").write_bytes(b"")
    assert find_source(tmp_path) == ("batches", folder)


def test_missing_data_says_what_was_tried(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    missing = tmp_path / "nowhere"
    with pytest.raises(UsageError) as err:
        ensure_cache(missing)
    message = str(err.value)
    assert "train-*.parquet" in message and "--data-dir" in message and str(missing) in message
    assert "RAYSWEEP_OFFLINE=1" in message
    assert not missing.exists()


def test_a_node_without_the_cache_decodes_its_own(tmp_path, monkeypatch):
    source = next(data_dir().rglob("train-*.parquet"))
    folder = tmp_path / "d"
    folder.mkdir()
    pq.write_table(pq.read_table(source).slice(0, 200), folder / "train-0.parquet")
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "driver-cache"))
    cache, where = ensure_cache(folder)
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "node-cache"))  # another machine
    shutil.rmtree(tmp_path / "driver-cache")
    split = open_split(DataSpec(cache, 20, 10, 0, where))
    assert len(split.train_idx) == 20 and len(split.val_idx) == 10
    assert any((tmp_path / "node-cache").rglob("images.npy"))


def test_torchvision_batches_decode_to_the_same_images(tmp_path, monkeypatch, cifar_cache):
    """cifar-10-batches-py (the official pickled format) gives the same arrays."""
    import pickle

    images, labels = cifar_cache[0].open()
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for i in range(5):
        part = slice(10 * i, 10 * (i + 1))
        batch = {"data": images[part].transpose(0, 3, 1, 2).reshape(10, -1),
                 "labels": labels[part].tolist()}
        (folder / f"data_batch_{i + 1}").write_bytes(pickle.dumps(batch))
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    cache, source = ensure_cache(tmp_path)
    decoded, decoded_labels = cache.open()
    assert source == f"batches:{folder}"
    assert np.array_equal(decoded, images[:50]) and np.array_equal(decoded_labels, labels[:50])
