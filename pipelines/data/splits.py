"""Seeded, class-stratified training and validation indices into a labelled pool.

An explicit size is spread evenly over the classes (the remainder one image
each to the first classes). Without a size: every training image, and for
validation the source's own validation images if it has them, else 10% of
each class held out of the training images.
"""

from __future__ import annotations

import numpy as np

from pipelines.errors import UsageError

HELD_OUT = 0.1  # val_size None, no validation images of the source's own: this share per class


def split_pool(labels: np.ndarray, train_images: int, train_size: int | None,
               val_size: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation indices into a pool whose first `train_images` images
    are for training and whose others (if any) are the source's own validation images."""
    if train_images == len(labels):
        return stratified_split(labels, train_size, val_size, seed)
    rng = np.random.default_rng(seed)
    train = _subset(labels[:train_images], train_size, rng, "--train-size", "training")
    val = _subset(labels[train_images:], val_size, rng, "--val-size", "validation")
    return train, val + train_images


def stratified_split(labels: np.ndarray, train_size: int | None, val_size: int | None,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded, class-stratified train/validation indices into `labels`, no overlap."""
    classes = np.unique(labels)
    _check_at_least_one_per_class(classes, (("--train-size", train_size),
                                            ("--val-size", val_size)))
    if train_size is not None and val_size is not None and train_size + val_size > len(labels):
        raise UsageError(f"train_size={train_size} + val_size={val_size} is more than the "
                         f"{len(labels)} training images; lower --train-size or --val-size")
    rng = np.random.default_rng(seed)
    train, val = [], []
    for i, c in enumerate(classes):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = _share(val_size, i, len(classes)) if val_size is not None else _held_out(len(idx))
        n_train = _share(train_size, i, len(classes)) if train_size is not None \
            else len(idx) - n_val
        if n_val + n_train > len(idx):
            raise UsageError(
                f"train_size={train_size} + val_size={val_size} needs {n_train + n_val} "
                f"images of class {c}, only {len(idx)} exist; lower --train-size or --val-size"
            )
        val.append(idx[:n_val])
        train.append(idx[n_val:n_val + n_train])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def _subset(labels: np.ndarray, size: int | None, rng: np.random.Generator, flag: str,
            what: str) -> np.ndarray:
    """`size` images of `labels`, spread evenly over its classes; None: all of them."""
    if size is None:
        return np.arange(len(labels))
    classes = np.unique(labels)
    _check_at_least_one_per_class(classes, ((flag, size),))
    if size > len(labels):
        raise UsageError(f"{flag} {size} is more than the {len(labels)} {what} images; "
                         f"lower {flag}")
    taken = []
    for i, c in enumerate(classes):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n = _share(size, i, len(classes))
        if n > len(idx):
            raise UsageError(f"{flag} {size} needs {n} {what} images of class {c}, only "
                             f"{len(idx)} exist; lower {flag}")
        taken.append(idx[:n])
    return np.sort(np.concatenate(taken))


def _check_at_least_one_per_class(classes: np.ndarray,
                                  sizes: tuple[tuple[str, int | None], ...]) -> None:
    for flag, size in sizes:
        if size is not None and size < len(classes):
            raise UsageError(f"{flag} {size} is smaller than the {len(classes)} classes; "
                             f"use at least {len(classes)}")


def _share(size: int, i: int, k: int) -> int:
    # class i's part of `size` spread over k classes; the remainder to the first classes
    return size // k + (i < size % k)


def _held_out(n: int) -> int:
    # 10% of a class, at least one image of a class that has two
    return max(1, round(HELD_OUT * n)) if n >= 2 else 0
