"""What a sweep searches and how: the backend-neutral space (domains), the
sweep and its budgets and stages, and the searchers and trial schedulers by
name."""

from pipelines.search.searchers import SEARCHERS, build_searcher
from pipelines.search.space import (
    Choice,
    Domain,
    IntUniform,
    LogUniform,
    Uniform,
    compile_space,
    describe,
    grid_points,
    grid_size,
    to_tune,
)
from pipelines.search.sweep import (
    CARRIED_KEY,
    Budget,
    Stage,
    Sweep,
    default_stages,
    load_sweep,
    start_values,
    sweep_names,
    with_carried,
)
from pipelines.search.trial_schedulers import SCHEDULERS, build_scheduler

__all__ = [
    "CARRIED_KEY",
    "SCHEDULERS", "SEARCHERS", "Budget", "Choice", "Domain", "IntUniform", "LogUniform", "Stage",
    "Sweep", "Uniform", "build_scheduler", "build_searcher", "compile_space", "default_stages",
    "describe", "grid_points", "grid_size", "load_sweep", "start_values", "sweep_names",
    "to_tune", "with_carried",
]
