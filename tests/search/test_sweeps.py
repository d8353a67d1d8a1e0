"""Every sweep module trains: its quick budget's configuration at the first
grid point of each parameter, one epoch on tiny real data (segmentation
sweeps: test_segmentation runs one through the CLI)."""

import math

import pytest

from pipelines.search.space import grid_points
from pipelines.search.sweep import load_sweep, sweep_names
from pipelines.training.classify import train

CLASSIFICATION = [name for name in sweep_names()
                  if load_sweep(name).task == "classification"]


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_every_classification_sweep_trains_one_epoch(tiny_data, name):
    sweep = load_sweep(name)
    first = {key: (grid_points(domain) or (domain.low,))[0]
             for key, domain in sweep.space.items()}
    values = {**sweep.fixed, **sweep.quick.fixed, **first, "epochs": 1}
    reports = []
    train(sweep.config_class.from_dict(values), tiny_data,
          report=lambda metrics, state: reports.append(metrics))
    assert len(reports) == 1 and math.isfinite(reports[0]["train_loss"])
    assert 0 <= reports[0][sweep.metric] <= 1
