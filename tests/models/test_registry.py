"""register_model: a sweep file loaded again re-registers its models; a taken name stays taken.

The files are loaded as the project loads a sweep file (find_sweep + import_sweep)."""

import sys

import pytest
import torch

from models import build_model, model_names, register_model
from pipelines.errors import UsageError
from pipelines.search.sweep_loader import find_sweep, import_sweep

SWEEP_FILE = '''
from torch import nn
from pipelines import Budget, Choice, Sweep, register_model

@register_model("{name}")
def net(num_classes: int, in_channels: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(in_channels, {channels}, 3), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear({channels}, num_classes))

SWEEP = Sweep(description="d", space={{"x": Choice((1,))}}, trainable=lambda c, r: None,
              metric="m", quick=Budget(num_samples=1, max_epochs=1, grace_period=1,
                                       reduction_factor=2))
'''


@pytest.fixture(autouse=True)
def restore_sys_path(monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))  # import_sweep adds the file's directory


def load(path, name, channels=4):
    """Write a sweep file registering model `name` at `path` and load it as the CLI does."""
    path.write_text(SWEEP_FILE.format(name=name, channels=channels))
    return import_sweep(find_sweep(str(path)))


def first_conv_channels(name):
    model = build_model(name, num_classes=3, width=8, depth=None, dropout=0.0, in_channels=1)
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 3)
    return next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d)).out_channels


def test_the_same_file_loaded_again_re_registers_its_model(tmp_path):
    path = tmp_path / "my_sweep.py"
    first = load(path, "reloaded_net", channels=4)
    assert "reloaded_net" in model_names("classification")
    assert first_conv_channels("reloaded_net") == 4
    second = load(path, "reloaded_net", channels=6)  # the file edited: its module runs again
    assert second is not first
    assert first_conv_channels("reloaded_net") == 6  # the new factory replaced the old one


def test_another_factory_under_a_taken_name_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="'resnet' is already registered by models.resnet.resnet"):
        register_model("resnet")(lambda num_classes: torch.nn.Linear(1, num_classes))
    load(tmp_path / "first_sweep.py", "taken_net")
    # register_model's ValueError, which the loader may give as a UsageError naming the file
    with pytest.raises((ValueError, UsageError), match="'taken_net' is already registered by "
                                                       "raysweep_sweep_first_sweep.net"):
        load(tmp_path / "second_sweep.py", "taken_net")  # the same code, another module
