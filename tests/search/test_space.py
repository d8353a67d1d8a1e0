"""The space compiler, for every algorithm and every sweep module."""

from typing import Mapping

import pytest
from ray.tune.search import Searcher
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


@pytest.mark.parametrize("algo", sorted(SEARCHERS))
def test_every_searcher_accepts_the_compiled_space(algo):
    searcher = build_searcher(algo, metric="val_acc", mode="max", seed=0, num_samples=4)
    space = to_tune(SPACE, algo, {"epochs": 2})
    if hasattr(searcher, "set_search_properties"):
        assert searcher.set_search_properties("val_acc", "max", space) is not False
    if algo in ("optuna", "hyperopt"):
        assert isinstance(searcher, Searcher)
        suggestion = searcher.suggest("trial_1")
        assert suggestion is not None
        assert 1e-3 <= suggestion["lr"] <= 1.0
        assert 0 <= suggestion["crop_padding"] <= 4
        assert suggestion["optimizer"] in ("sgd", "adam")


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
