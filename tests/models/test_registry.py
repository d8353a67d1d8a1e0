"""register_model: a sweep file imported twice re-registers its models; a taken name stays taken."""

import importlib.util

import pytest
import torch

from models import build_model, model_names, register_model

SWEEP_FILE = '''
from torch import nn
from models import register_model

@register_model("{name}")
def {factory}(num_classes: int, in_channels: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(in_channels, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, num_classes))
'''


def load(path, module_name):
    """Import the file at `path` as `module_name`, as a sweep file loaded by path is."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_same_file_imported_twice_re_registers_its_model(tmp_path):
    path = tmp_path / "my_sweep.py"
    path.write_text(SWEEP_FILE.format(name="reloaded_net", factory="net"))
    first = load(path, "my_sweep")
    second = load(path, "my_sweep")  # e.g. a Ray worker importing the driver's sweep file
    assert first.net is not second.net and "reloaded_net" in model_names("classification")
    model = build_model("reloaded_net", num_classes=3, width=8, depth=None, dropout=0.0,
                        in_channels=1)
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 3)


def test_another_factory_under_a_taken_name_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="'resnet' is already registered by models.resnet.resnet"):
        register_model("resnet")(lambda num_classes: torch.nn.Linear(1, num_classes))
    path = tmp_path / "other_sweep.py"
    path.write_text(SWEEP_FILE.format(name="taken_net", factory="net"))
    load(path, "other_sweep")
    with pytest.raises(ValueError, match="already registered by other_sweep.net"):
        load(path, "another_module")  # the same code, but another module: another factory
