"""raysweep: define a hyperparameter sweep once, run it as grid, random or
Bayesian search with early stopping on Ray Tune, and analyse every trial from
Parquet.

The public API is this package's namespace; a sweep file needs one import line:

    from pipelines import Budget, Choice, ImageFolder, LogUniform, Sweep, register_model

The subpackages show the architecture: `search` (spaces, sweeps, searchers and
trial schedulers), `training` (configs and trainers, no Ray), `data`, `tuning`
(running a sweep on Ray Tune), `lr_range` (the range test), `records` (storage
and the Parquet schema) and `analysis`. The names below are loaded when first
used, so that `python -m pipelines.run --help` does not import torch and Ray.
Running a sweep from Python: `pipelines.tuning.run(RunOptions(...))`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from models import register_model
    from pipelines.analysis import (
        best_config,
        importance,
        leaderboard,
        load_run,
        load_runs,
        pareto_front,
    )
    from pipelines.data import Cifar10, ImageFolder, ParquetImages, SegDataset
    from pipelines.errors import UsageError
    from pipelines.search import (
        Budget,
        Choice,
        IntUniform,
        LogUniform,
        Stage,
        Sweep,
        Uniform,
        default_stages,
    )
    from pipelines.training import SegConfig, TrainConfig

__all__ = [
    "Budget", "Choice", "Cifar10", "ImageFolder", "IntUniform", "LogUniform", "ParquetImages",
    "SegConfig", "SegDataset", "Stage", "Sweep", "TrainConfig", "Uniform", "UsageError",
    "best_config", "default_stages", "importance", "leaderboard", "load_run", "load_runs",
    "pareto_front", "register_model",
]


__getattr__, __dir__ = lazy_exports(__name__)  # the names above load on first use
