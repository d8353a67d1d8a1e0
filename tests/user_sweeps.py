"""Sweep files as a user keeps them in their own repository: written by the tests
into a directory outside this one, with their own training loop on data that is
not CIFAR-10 (scikit-learn's handwritten digits)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Iterator

FUNCTION_SWEEP = '''
"""A user's own loop: an MLP on scikit-learn's digits, scored by validation NLL."""
import time

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from pipelines import Budget, Choice, LogUniform, Sweep


def train(config, report, resume_state=None):
    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x / 16, dtype=torch.float32), torch.tensor(y)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    train_idx, val_idx = order[:1400], order[1400:]
    torch.manual_seed(config["seed"])
    model = torch.nn.Sequential(torch.nn.Linear(64, config["hidden"]), torch.nn.ReLU(),
                                torch.nn.Linear(config["hidden"], 10))
    opt = torch.optim.SGD(model.parameters(), lr=config["lr"], momentum=0.9)
    start = 0
    if resume_state is not None:
        model.load_state_dict(resume_state["model"])
        opt.load_state_dict(resume_state["opt"])
        start = resume_state["epoch"]
    for epoch in range(start + 1, config["epochs"] + 1):
        for batch in train_idx[torch.randperm(len(train_idx))].split(64):
            loss = F.cross_entropy(model(x[batch]), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            logits = model(x[val_idx])
            nll = F.cross_entropy(logits, y[val_idx]).item()
            error = (logits.argmax(1) != y[val_idx]).float().mean().item()
        time.sleep(SLEEP_S)
        report({"val_nll": nll, "val_error": error, "resumed_at": start},
               state={"model": model.state_dict(), "opt": opt.state_dict(), "epoch": epoch})


SWEEP = Sweep(
    description="digits MLP: lr and width of a user's own loop (val_nll, lower is better)",
    trainable=train,
    metric="val_nll",
    mode="min",
    space={"lr": LogUniform(1e-3, 0.5, grid=(0.3, 0.03, 1e-3)), "hidden": Choice((8, 32))},
    quick=Budget(num_samples=6, max_epochs=4, grace_period=1, reduction_factor=2),
    full=Budget(num_samples=40, max_epochs=20, grace_period=2, reduction_factor=3),
)
'''


def write_function_sweep(directory: Path, name: str = "digits_loop",
                         sleep_s: float = 0.0) -> Path:
    """A sweep file with its own trainable; each epoch also sleeps `sleep_s` (so a
    test can kill the driver mid-sweep)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.py"
    path.write_text(textwrap.dedent(FUNCTION_SWEEP).replace("SLEEP_S", repr(sleep_s)))
    return path


DATA_SWEEP = '''
"""A user's own images and a net of their own, registered in this file."""
from torch import nn

from pipelines import (Budget, Choice, ImageFolder, LogUniform, ParquetImages, Sweep,
                       register_model)


@register_model("tiny_digits_net")
def tiny_digits_net(num_classes, in_channels, image_size, width=16):
    assert min(image_size) >= 8  # what the data says, passed in by the trainer
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, num_classes))


SWEEP = Sweep(
    description="handwritten digits: lr and width of a net registered in this file",
    data=DATA,
    space={"lr": LogUniform(0.1, 1.0, grid=(0.3,)), "width": Choice((16, 32))},
    fixed={"model": "tiny_digits_net", "batch_size": 32, "crop_padding": 1, "flip_prob": 0.0},
    quick=Budget(num_samples=4, max_epochs=6, grace_period=2, reduction_factor=2),
)
'''


def write_data_sweep(directory: Path, data: str, name: str = "digits_sweep") -> Path:
    """A sweep file on the user's own data (`data`: the Python expression of its
    source, e.g. "ImageFolder('/data/digits')") with a model registered in it."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.py"
    path.write_text(textwrap.dedent(DATA_SWEEP).replace("DATA,", f"{data},", 1))
    return path


def own_digits_sweep(root: Path, n: int | None = None) -> Iterator[Path]:
    """For a module fixture: a data sweep file under `root` (outside the repository)
    on `n` of the digits as an ImageFolder (not CIFAR-10), with a decoded cache of
    its own while the fixture lasts."""
    import pytest

    from pipelines.data.cache import CACHE_DIR_ENV
    from tests.digits import write_digits_folder

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_DIR_ENV, str(root / "cache"))
        folder = write_digits_folder(root / "digits", n=n)
        yield write_data_sweep(root / "elsewhere", f"ImageFolder({str(folder)!r})")
