"""Backend-neutral search-space domains and their compiler to Ray Tune.

A sweep writes its space once with these domains; `to_tune` turns it into a
Ray Tune `param_space` for any algorithm: grid search uses each domain's grid
points, random / Optuna / HyperOpt sample the domain itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from ray import tune
from ray.tune.search.sample import Domain as TuneDomain

from pipelines.errors import UsageError


@dataclass(frozen=True)
class Uniform:
    """A float sampled uniformly on [low, high]."""

    low: float
    high: float
    grid: tuple = ()

    def check(self, name: str) -> None:
        _check_range(name, self.low, self.high)
        _check_grid_in_range(name, self.grid, self.low, self.high)

    def sample_domain(self) -> TuneDomain:
        return tune.uniform(self.low, self.high)


@dataclass(frozen=True)
class LogUniform(Uniform):
    """A float sampled uniformly in log space on [low, high]."""

    def check(self, name: str) -> None:
        super().check(name)
        if self.low <= 0:
            raise UsageError(f"parameter {name!r}: log domain needs low > 0, got {self.low}")

    def sample_domain(self) -> TuneDomain:
        return tune.loguniform(self.low, self.high)


@dataclass(frozen=True)
class IntUniform:
    """An integer on [low, high], both inclusive; `log=True` samples in log space."""

    low: int
    high: int
    log: bool = False
    grid: tuple = ()

    def check(self, name: str) -> None:
        _check_range(name, self.low, self.high)
        if self.log and self.low <= 0:
            raise UsageError(f"parameter {name!r}: log domain needs low > 0, got {self.low}")
        _check_grid_in_range(name, self.grid, self.low, self.high)

    def sample_domain(self) -> TuneDomain:
        sampler = tune.lograndint if self.log else tune.randint
        return sampler(self.low, self.high + 1)  # Tune's upper bound is exclusive


@dataclass(frozen=True)
class Choice:
    """One of `options`. Its grid points default to all options."""

    options: tuple
    grid: tuple | None = None

    def check(self, name: str) -> None:
        if not self.options:
            raise UsageError(f"parameter {name!r}: Choice needs at least one option")
        outside = [g for g in self.grid or () if g not in self.options]
        if outside:
            raise UsageError(f"parameter {name!r}: grid points {outside} are not among the "
                             f"options {list(self.options)}")

    def sample_domain(self) -> TuneDomain:
        return tune.choice(list(self.options))


Domain = LogUniform | Uniform | IntUniform | Choice


def _check_range(name: str, low: float, high: float) -> None:
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise UsageError(f"parameter {name!r}: needs finite low < high, got low={low}, "
                         f"high={high}")


def _check_grid_in_range(name: str, grid: tuple, low: float, high: float) -> None:
    outside = [g for g in grid if not low <= g <= high]
    if outside:
        raise UsageError(f"parameter {name!r}: grid points {outside} lie outside "
                         f"[{low}, {high}]")


def grid_points(domain: Domain) -> tuple:
    """The values grid search tries: a Choice's grid (default: its options), a range's grid."""
    if isinstance(domain, Choice):
        return tuple(domain.grid if domain.grid is not None else domain.options)
    return tuple(domain.grid)


def candidate_values(domain: Domain) -> tuple:
    """Values worth validating: a Choice's options, a range's bounds, any grid points."""
    if isinstance(domain, Choice):
        return tuple(domain.options)
    return (domain.low, domain.high, *domain.grid)


def check_space(space: Mapping[str, Domain], known_keys: list[str] | None) -> None:
    """Validate every domain; parameter names must be trainer config keys (any
    name, for a trainable that takes a plain dict: `known_keys` None)."""
    if not space:
        raise UsageError("the search space is empty; give the sweep at least one parameter")
    for name, domain in space.items():
        if known_keys is not None and name not in known_keys:
            raise UsageError(f"parameter {name!r} is not a trainer config key; "
                             f"known keys: {', '.join(known_keys)}")
        domain.check(name)


def grid_size(space: Mapping[str, Domain]) -> int:
    """Points in the space's grid: the product of every domain's grid points."""
    return math.prod(len(grid_points(d)) for d in space.values())


def to_tune(space: Mapping[str, Domain], algo: str,
            fixed: Mapping[str, Any]) -> dict[str, Any]:
    """Compile to a Ray Tune param_space; `fixed` values pass through as constants."""
    compiled: dict[str, Any] = dict(fixed)
    for name, domain in space.items():
        if algo == "grid":
            points = grid_points(domain)
            if not points:
                raise UsageError(f"--algo grid: parameter {name!r} has no grid points; add "
                                 f"grid=(...) to its domain or use --algo random|optuna|gp")
            compiled[name] = tune.grid_search(list(points))
        else:
            compiled[name] = domain.sample_domain()
    return compiled


@dataclass(frozen=True)
class CompiledSpace:
    """A space as Ray Tune takes it, and how many trials it makes."""

    param_space: dict[str, Any]
    num_samples: int  # Tune's num_samples (grid: 1, the passes are a grid axis)
    trials: int  # trials in all: num_samples times the grid's size


def compile_space(space: Mapping[str, Domain], algo: str, fixed: Mapping[str, Any],
                  num_samples: int, seed: int, grid_passes: int | None = None) -> CompiledSpace:
    """Tune's param_space and num_samples; grid search runs `grid_passes` passes
    (default `num_samples`) over its grid, each with its own trial seed."""
    param_space = to_tune(space, algo, fixed)
    if algo != "grid":
        return CompiledSpace(param_space, num_samples, num_samples)
    passes = grid_passes or num_samples
    if passes > 1:  # identical repeats would teach nothing
        param_space["seed"] = tune.grid_search([seed + i for i in range(passes)])
    return CompiledSpace(param_space, 1, grid_size(space) * passes)


def describe(space: Mapping[str, Domain]) -> dict[str, dict[str, Any]]:
    """A JSON-friendly description of the space, for run.json."""
    return {name: {"type": type(d).__name__, **{k: list(v) if isinstance(v, tuple) else v
                                                for k, v in vars(d).items()}}
            for name, d in space.items()}
