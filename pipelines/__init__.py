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

import importlib
from typing import TYPE_CHECKING

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

# public name -> the module that defines it
_EXPORTS = {
    "Budget": "pipelines.search", "Choice": "pipelines.search", "IntUniform": "pipelines.search",
    "LogUniform": "pipelines.search", "Stage": "pipelines.search", "Sweep": "pipelines.search",
    "Uniform": "pipelines.search", "default_stages": "pipelines.search",
    "register_model": "models", "SegDataset": "pipelines.data", "Cifar10": "pipelines.data",
    "ImageFolder": "pipelines.data", "ParquetImages": "pipelines.data",
    "SegConfig": "pipelines.training", "TrainConfig": "pipelines.training",
    "best_config": "pipelines.analysis", "importance": "pipelines.analysis",
    "leaderboard": "pipelines.analysis", "load_run": "pipelines.analysis",
    "load_runs": "pipelines.analysis", "pareto_front": "pipelines.analysis",
    "UsageError": "pipelines.errors",
}

__all__ = [
    "Budget", "Choice", "Cifar10", "ImageFolder", "IntUniform", "LogUniform", "ParquetImages",
    "SegConfig", "SegDataset", "Stage", "Sweep", "TrainConfig", "Uniform", "UsageError",
    "best_config", "default_stages", "importance", "leaderboard", "load_run", "load_runs",
    "pareto_front", "register_model",
]


def __getattr__(name: str) -> object:
    """Import a public name's module on first use (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pipelines' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
