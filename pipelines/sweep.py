"""A sweep: the space, the budget and the defaults of one search, as one
object in one `search_spaces/<name>.py` module (the module name is its CLI
name, the object is called `SWEEP`)."""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Mapping

from pipelines.config import TrainConfig
from pipelines.errors import UsageError
from pipelines.space import Domain, candidate_values, check_space

SWEEP_PACKAGE = "search_spaces"


@dataclass(frozen=True)
class Budget:
    """How much to spend: trials, epochs, ASHA rungs and data size."""

    num_samples: int  # trials for random/optuna/hyperopt; repeats of the grid for grid
    max_epochs: int  # ASHA's max_t and every trial's schedule horizon
    grace_period: int  # epochs before ASHA may stop a trial
    reduction_factor: int  # ASHA keeps 1 / reduction_factor at each rung
    train_size: int  # images, stratified from the 50,000 training images
    val_size: int  # images, held out of the training images for selection
    fixed: Mapping[str, Any] = field(default_factory=dict)  # config values for this budget


@dataclass(frozen=True)
class Sweep:
    description: str  # one line, shown by --list
    space: Mapping[str, Domain]
    full: Budget
    quick: Budget  # CPU-sized: --quick
    fixed: Mapping[str, Any] = field(default_factory=dict)  # config values for every trial
    metric: str = "val_acc"
    mode: str = "max"
    default_algo: str = "optuna"

    def check(self) -> None:
        """Every key known, every domain valid, and every value the space can take
        (options, grid points, bounds) a valid config with the fixed values."""
        keys = TrainConfig.field_names()
        check_space(self.space, keys)
        for budget in (self.full, self.quick):
            fixed = {**self.fixed, **budget.fixed}
            unknown = sorted(set(fixed) - set(keys))
            if unknown:
                raise UsageError(f"fixed value(s) for unknown config key(s) {unknown}; "
                                 f"known keys: {', '.join(keys)}")
            _check_config(fixed, "the fixed values")
            for name, domain in self.space.items():
                for value in candidate_values(domain):
                    _check_config({**fixed, name: value}, f"parameter {name!r} = {value!r}")


def _check_config(values: Mapping[str, Any], what: str) -> None:
    try:
        TrainConfig.from_dict(dict(values))
    except (TypeError, ValueError) as e:
        raise UsageError(f"{what}: {e}") from None


def sweep_names() -> list[str]:
    package = importlib.import_module(SWEEP_PACKAGE)
    return sorted(m.name for m in pkgutil.iter_modules(package.__path__)
                  if not m.name.startswith("_"))


def load_sweep(name: str) -> Sweep:
    if name not in sweep_names():
        raise UsageError(f"unknown sweep {name!r}; known sweeps: {', '.join(sweep_names())} "
                         f"(see --list)")
    sweep = getattr(importlib.import_module(f"{SWEEP_PACKAGE}.{name}"), "SWEEP", None)
    if not isinstance(sweep, Sweep):
        raise UsageError(f"search_spaces/{name}.py defines no SWEEP = Sweep(...)")
    sweep.check()
    return sweep
