"""The space compiler, for every algorithm and every sweep module."""

import itertools
import math
from pathlib import Path
from typing import Any, Mapping

import pytest
from ray.tune.experiment import Experiment
from ray.tune.search import Searcher, SearchGenerator
from ray.tune.search.sample import Categorical, Float, Integer

from pipelines.errors import UsageError
from pipelines.search.searchers import SEARCHERS, build_searcher
from pipelines.search.space import (
    Choice,
    Domain,
    IntUniform,
    LogUniform,
    Uniform,
    check_space,
    grid_points,
    grid_size,
    to_tune,
)
from pipelines.search.sweep import build_config
from pipelines.search.sweep_loader import load_sweep, sweep_names
from pipelines.training.config import TrainConfig

SPACE: dict[str, Domain] = {
    "lr": LogUniform(1e-3, 1.0, grid=(0.01, 0.1)),
    "dropout": Uniform(0.0, 0.5, grid=(0.0,)),
    "crop_padding": IntUniform(0, 4, grid=(2, 4)),
    "optimizer": Choice(("sgd", "adam")),
}
KEYS = TrainConfig.field_names()


def test_grid_uses_grid_points_and_choice_options():
    compiled = to_tune(SPACE, "grid", {"epochs": 3})
    assert compiled["lr"] == {"grid_search": [0.01, 0.1]}
    assert compiled["optimizer"] == {"grid_search": ["sgd", "adam"]}
    assert compiled["epochs"] == 3
    assert grid_size(SPACE) == 2 * 1 * 2 * 2


@pytest.mark.parametrize("algo", ["random", "optuna", "hyperopt"])
def test_sampling_algorithms_get_tune_domains(algo):
    compiled = to_tune(SPACE, algo, {})
    assert isinstance(compiled["lr"], Float) and compiled["lr"].lower == 1e-3
    assert isinstance(compiled["lr"].get_sampler(), Float._LogUniform)
    assert isinstance(compiled["crop_padding"], Integer)
    assert compiled["crop_padding"].upper == 5  # Tune's randint excludes the upper bound
    assert isinstance(compiled["optimizer"], Categorical)


def _draw(algo: str, n: int, storage: Path) -> list[dict[str, Any]]:
    """Trial configs as Tune makes them with the run's searcher from the compiled
    SPACE: a grid's every point, else `n` trials (no results reported: the model-based
    searchers' random start-up)."""
    searcher = build_searcher(algo, metric="val_acc", mode="max", seed=0, num_samples=n)
    space = to_tune(SPACE, algo, {"epochs": 2})
    if isinstance(searcher, Searcher):  # as Tune runs one: behind a SearchGenerator
        assert searcher.set_search_properties("val_acc", "max", space) is not False
    generator = SearchGenerator(searcher) if isinstance(searcher, Searcher) else searcher
    generator.add_configurations([Experiment("draw", lambda config: None, config=space,
                                             num_samples=1 if algo == "grid" else n,
                                             storage_path=str(storage))])
    return [trial.config for trial in iter(generator.next_trial, None)]


def _in_domain(domain: Domain, value: Any) -> bool:
    if isinstance(domain, Choice):
        return value in domain.options
    kind = int if isinstance(domain, IntUniform) else float
    return isinstance(value, kind) and domain.low <= value <= domain.high


def _every_value(domain: IntUniform | Choice) -> tuple:
    """Every value a domain can take: a Choice's options, an IntUniform's integers."""
    if isinstance(domain, Choice):
        return domain.options
    return tuple(range(domain.low, domain.high + 1))


@pytest.mark.parametrize("algo", sorted(SEARCHERS))
def test_every_searcher_draws_values_inside_the_domains(algo, tmp_path):
    n = 40  # trials: enough to see each of 5 integers, and the log scale
    configs = _draw(algo, n, tmp_path)
    assert all(c["epochs"] == 2 and set(c) == {"epochs", *SPACE} for c in configs)
    if algo == "grid":  # each grid point exactly once, nothing else
        points = sorted(tuple(c[k] for k in SPACE) for c in configs)
        assert points == sorted(itertools.product(*(grid_points(d) for d in SPACE.values())))
        return
    assert len(configs) == n
    for name, domain in SPACE.items():
        values = [c[name] for c in configs]
        assert all(_in_domain(domain, v) for v in values), (name, values)
        if not isinstance(domain, Uniform):  # every option and integer, both bounds too
            assert set(values) == set(_every_value(domain)), (name, sorted(set(values)))
    # log-uniform: about half the draws below the geometric mean of the bounds (a
    # linear uniform on [1e-3, 1] puts 3% there)
    lr = SPACE["lr"]
    assert isinstance(lr, LogUniform)
    below = sum(c["lr"] < math.sqrt(lr.low * lr.high) for c in configs)
    assert 0.3 * n <= below <= 0.7 * n, below


def test_grid_without_points_names_the_parameter():
    space = {**SPACE, "weight_decay": LogUniform(1e-5, 1e-2)}
    with pytest.raises(UsageError, match="'weight_decay' has no grid points"):
        to_tune(space, "grid", {})
    to_tune(space, "random", {})  # sampling needs no grid points


@pytest.mark.parametrize("domain,message", [
    (Uniform(1.0, 1.0), "low < high"),
    (Uniform(2.0, 1.0), "low < high"),
    (LogUniform(0.0, 1.0), "log domain needs low > 0"),
    (LogUniform(-1.0, 1.0), "log domain needs low > 0"),
    (IntUniform(0, 8, log=True), "log domain needs low > 0"),
    (Choice(()), "at least one option"),
    (Uniform(0.0, 1.0, grid=(2.0,)), "outside"),
    (Choice(("a",), grid=("b",)), "not among the options"),
])
def test_invalid_domains_are_rejected_with_the_name(domain, message):
    with pytest.raises(UsageError, match=f"'dropout'.*{message}"):
        check_space({"dropout": domain}, KEYS)


def test_unknown_parameter_is_rejected():
    with pytest.raises(UsageError, match="'learning_rate' is not a trainer config key"):
        check_space({"learning_rate": Uniform(0, 1)}, KEYS)


@pytest.mark.parametrize("name", sweep_names())
@pytest.mark.parametrize("algo", sorted(SEARCHERS))
def test_every_sweep_compiles_for_every_algorithm(name, algo):
    sweep = load_sweep(name)
    for budget in (sweep.budget(quick=True), sweep.budget(quick=False)):
        to_tune(sweep.space, algo, {**sweep.fixed, **budget.fixed})
        build_config(sweep.config_class, {**sweep.fixed, **budget.fixed})
    spaces: list[Mapping[str, Domain]] = [{k: sweep.space[k] for k in s.params}
                                          for s in sweep.stages] or [sweep.space]
    for space in spaces:
        assert grid_size(space) <= 64, "keep the default grid runnable"


def test_unknown_sweep_lists_known_ones():
    with pytest.raises(UsageError, match="known sweeps: .*cifar_sweep"):
        load_sweep("cifar_sweeeep")


@pytest.mark.parametrize("space,fixed,message", [
    ({"optimizer": Choice(("sgd", "adamx"))}, {}, "'optimizer' = 'adamx': unknown optimizer"),
    ({"flip_prob": Uniform(0.0, 1.5)}, {}, "'flip_prob' = 1.5: flip_prob must be in"),
    ({"lr": LogUniform(1e-3, 1.0)}, {"model": "resnte"}, "fixed values: unknown model"),
    ({"optimizer": Choice(("sgd", "adam"))}, {"nesterov": True}, "'adam': nesterov needs"),
])
def test_sweep_values_are_checked_before_any_trial(space, fixed, message):
    from pipelines.search.sweep import Budget, Sweep

    budget = Budget(num_samples=1, max_epochs=1, grace_period=1, reduction_factor=2,
                    train_size=100, val_size=100)
    sweep = Sweep(description="d", space=space, fixed=fixed, full=budget, quick=budget)
    with pytest.raises(UsageError, match=message):
        sweep.check()
