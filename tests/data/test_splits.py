"""The stratified training/validation split: explicit sizes, the defaults, and a
source's own validation images."""

import numpy as np
import pytest

from pipelines.data.splits import split_pool, stratified_split
from pipelines.errors import UsageError
from tests.digits import digits


@pytest.fixture(scope="module")
def labels(cifar_cache):
    from pipelines.data.images import open_split

    return open_split(cifar_cache).labels


def test_split_is_stratified_disjoint_and_seeded(labels):
    train, val = stratified_split(labels, 45_000, 5_000, seed=0)
    assert len(train) == 45_000 and len(val) == 5_000
    assert not set(train) & set(val)
    assert np.bincount(labels[val]).tolist() == [500] * 10
    again, _ = stratified_split(labels, 45_000, 5_000, seed=0)
    other, _ = stratified_split(labels, 45_000, 5_000, seed=1)
    assert np.array_equal(train, again) and not np.array_equal(train, other)


def test_uneven_sizes_are_met_exactly(labels):
    train, val = stratified_split(labels, 1005, 13, seed=0)
    assert len(train) == 1005 and len(val) == 13
    assert max(np.bincount(labels[val], minlength=10)) - min(
        np.bincount(labels[val], minlength=10)) == 1


@pytest.mark.parametrize("train_size,val_size,flag", [(1000, 5, "--val-size"),
                                                      (3, 100, "--train-size")])
def test_fewer_images_than_classes_is_a_usage_error(labels, train_size, val_size, flag):
    with pytest.raises(UsageError, match=f"{flag} .* smaller than the 10 classes"):
        stratified_split(labels, train_size, val_size, seed=0)


def test_split_larger_than_the_data_is_a_usage_error(labels):
    with pytest.raises(UsageError, match="more than the 50000 training images; lower "
                                         "--train-size"):
        stratified_split(labels, 50_000, 5_000, seed=0)
    with pytest.raises(UsageError, match="needs 5100 images of class 0, only 5000 exist"):
        stratified_split(labels, 46_000, None, seed=0)  # 4,600 a class + 500 held out


def test_without_sizes_every_image_is_used_and_a_tenth_of_each_class_held_out():
    _, y = digits()  # 1,797 real digits, 174..183 per class: not balanced
    train, val = stratified_split(y, None, None, seed=0)
    assert len(train) + len(val) == len(y) and not set(train) & set(val)
    per_class = np.bincount(y)
    assert np.bincount(y[val]).tolist() == [round(n / 10) for n in per_class]


def test_an_explicit_validation_size_leaves_the_rest_for_training():
    _, y = digits()
    train, val = stratified_split(y, None, 100, seed=0)
    assert len(val) == 100 and len(train) == len(y) - 100
    assert np.bincount(y[val]).tolist() == [10] * 10


def test_a_sources_own_validation_images_are_the_validation_split():
    _, y = digits(300)
    pool = np.concatenate([y, y[:50]])  # 300 training images, then 50 validation ones
    train, val = split_pool(pool, 300, None, None, seed=0)
    assert train.tolist() == list(range(300)) and val.tolist() == list(range(300, 350))
    train, val = split_pool(pool, 300, 100, 20, seed=0)
    assert len(train) == 100 and train.max() < 300
    assert len(val) == 20 and val.min() >= 300
    with pytest.raises(UsageError, match="--val-size 60 is more than the 50 validation images"):
        split_pool(pool, 300, None, 60, seed=0)
