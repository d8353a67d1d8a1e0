"""What every image source shares (pipelines.data.image_source): decoding once
per machine, the split's sizes, the spec that travels to the trials."""

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from pipelines.data import ImageFolder, ParquetImages, open_split, prepare
from pipelines.data.cache import CACHE_DIR_ENV
from pipelines.errors import UsageError
from tests.digits import write_digits_folder, write_digits_parquet


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def folder(tmp_path) -> Path:
    return write_digits_folder(tmp_path / "digits", 200)


def test_a_second_prepare_reuses_the_cache_and_a_changed_file_decodes_again(folder, capsys):
    first = ImageFolder(str(folder)).prepare(None, None, None, 0)
    assert "decoding 200 images" in capsys.readouterr().err
    images = Path(first.cache) / "images.npy"
    written = images.stat().st_mtime_ns
    again = ImageFolder(str(folder)).prepare(None, 100, 50, 1)
    assert again.cache == first.cache and "decoding" not in capsys.readouterr().err
    assert images.stat().st_mtime_ns == written
    changed = next((folder / "3").iterdir())
    os.utime(changed, (1, 1))  # touched: the fingerprint changes
    assert ImageFolder(str(folder)).prepare(None, None, None, 0).cache != first.cache


def test_the_decode_parameters_key_the_cache(folder):
    as_is = ImageFolder(str(folder)).prepare(None, None, None, 0)
    resized = ImageFolder(str(folder), image_size=(4, 4)).prepare(None, None, None, 0)
    assert as_is.cache != resized.cache
    assert open_split(resized).images.shape == (200, 4, 4, 1)


def test_the_sizes_asked_for_and_those_used(folder):
    spec = ImageFolder(str(folder)).prepare(None, 100, 30, 0)
    data = open_split(spec)
    assert (len(data.train_idx), len(data.val_idx)) == spec.sizes == (100, 30)
    assert spec.record()["train_size"] == 100 and spec.record()["val_size"] == 30
    everything = ImageFolder(str(folder)).prepare(None, None, None, 0)
    assert everything.sizes == (180, 20) and everything.train_size is None
    with pytest.raises(UsageError, match="train_size=200 \\+ val_size=30 is more than the 200 "
                                         "training images"):
        ImageFolder(str(folder)).prepare(None, 200, 30, 0)


def test_the_spec_travels_to_a_trial_and_opens_there(tmp_path):
    write_digits_parquet(tmp_path / "pq", 120)
    spec = prepare(str(tmp_path), ParquetImages("pq", image="image", label="digit"), 60, 20, 3)
    shipped = pickle.loads(pickle.dumps(spec))
    assert shipped == spec and hash(shipped) == hash(spec)  # trials cache the opened split
    a, b = open_split(spec), open_split(shipped)
    assert np.array_equal(a.train_idx, b.train_idx) and np.array_equal(a.val_idx, b.val_idx)
    assert Path(spec.data_dir).is_absolute()  # relative roots resolve alike on every node


def test_no_test_split_is_none(folder):
    assert ImageFolder(str(folder)).test_data(None) is None


def test_a_list_image_size_becomes_a_tuple_and_the_spec_stays_hashable(folder):
    listed = ImageFolder(str(folder), image_size=[4, 6])  # type: ignore[arg-type]
    assert listed.image_size == (4, 6)
    assert ParquetImages("x", image_size=[4, 6]).image_size == (4, 6)  # type: ignore[arg-type]
    spec = listed.prepare(None, None, None, 0)
    assert hash(spec) == hash(ImageFolder(str(folder), image_size=(4, 6))
                              .prepare(None, None, None, 0))  # trials cache the opened split
    assert open_split(spec).images.shape == (200, 4, 6, 1)


@pytest.mark.parametrize("source", [ImageFolder, ParquetImages])
@pytest.mark.parametrize("size", [(0, -3), (32,), (8, 8, 8), 64, "64", (8.0, 8), (True, 8)])
def test_a_bad_image_size_is_one_line_for_every_source(source, size):
    with pytest.raises(UsageError, match=rf"^{source.__name__}\(image_size=.*\): give "
                                         r"\(height, width\) in pixels") as err:
        source("x", image_size=size)
    assert "\n" not in str(err.value)
