"""Every sweep module trains: its quick budget's configuration at the first
grid point of each parameter, one epoch on tiny real data (segmentation
sweeps: tests/training/test_segment.py runs one through the CLI)."""

import math

import pytest

from pipelines.search.space import candidate_values, grid_points
from pipelines.search.sweep import build_config
from pipelines.search.sweep_loader import load_sweep, sweep_names
from pipelines.training.classify import train
from pipelines.training.config import TrainConfig

CLASSIFICATION = [name for name in sweep_names()
                  if load_sweep(name).task == "classification"]


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_every_classification_sweep_trains_one_epoch(tiny_data, name):
    sweep = load_sweep(name)
    first = {key: (grid_points(domain) or candidate_values(domain))[0]  # a range's low
             for key, domain in sweep.space.items()}
    values = {**sweep.fixed, **sweep.budget(quick=True).fixed, **first, "epochs": 1}
    reports = []
    cfg = build_config(sweep.config_class, values)
    assert isinstance(cfg, TrainConfig)
    train(cfg, tiny_data,
          report=lambda metrics, state: reports.append(metrics))
    assert len(reports) == 1 and math.isfinite(reports[0]["train_loss"])
    assert 0 <= reports[0][sweep.primary_metric] <= 1


@pytest.mark.parametrize("task,metric", [("classification", "val_acc"),
                                         ("segmentation", "val_miou")])
def test_a_sweep_without_a_metric_optimises_its_tasks_default(task, metric):
    from pipelines import Budget, Choice, Sweep
    from pipelines.training.tasks import TASKS

    budget = Budget(num_samples=1, max_epochs=1, grace_period=1, reduction_factor=2,
                    train_size=10, val_size=10)
    sweep = Sweep(description="d", space={"width": Choice((8, 16))}, full=budget,
                  quick=budget, task=task)
    assert sweep.metric == metric == TASKS[task].metric
    assert Sweep(description="d", space={"width": Choice((8,))}, full=budget, quick=budget,
                 task=task, metric="val_loss", mode="min").metric == "val_loss"


def test_the_fast_recipe_benchs_all_row_is_cifar_fasts_recipe():
    """bench.fast_recipe's table adds airbench's pieces to the port one by one; its "all"
    row must be what cifar_fast sweeps (at the bench's lr), or the table measures
    another recipe than the sweep's."""
    from bench.fast_recipe import PIECES, recipe, sweep_recipe

    everything = {k: v for piece in PIECES.values() for k, v in piece.items()}
    assert recipe(0.375, 10, 0, **everything) == sweep_recipe(0.375, 10, 0)
    assert recipe(0.375, 10, 0) != sweep_recipe(0.375, 10, 0)  # base is the port
