"""The searchers on real Optuna studies: several objectives, constraints the
samplers learn (Optuna's constraints_func), and the time of each suggestion."""

from __future__ import annotations

import pytest
from ray import tune

from pipelines.errors import UsageError
from pipelines.search.searchers import build_searcher, suggest_seconds

SPACE = {"x": tune.uniform(0.0, 1.0)}


def _ready(algo: str, **kwargs):
    searcher = build_searcher(algo, seed=0, num_samples=8, **kwargs)
    searcher.set_search_properties(None, None, dict(SPACE))
    return searcher


def _study(searcher):
    return searcher.searcher._ot_study  # the wrapped OptunaSearch's study


@pytest.mark.parametrize("algo", ["optuna", "nsga2", "gp"])
def test_a_constraint_reaches_optuna_as_value_minus_limit(algo):
    searcher = _ready(algo, metric=["val_acc", "params"], mode=["max", "min"],
                      limits={"params": 1000, "peak_mem_mb": 50.0})
    for i, (params, mem) in enumerate([(4000, 10.0), (500, None)]):
        searcher.suggest(f"t{i}")
        result = {"val_acc": 0.5, "params": params}
        if mem is not None:
            result["peak_mem_mb"] = mem
        searcher.on_trial_complete(f"t{i}", result)
    study = _study(searcher)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    trials = study.get_trials()
    # Trial.constraints of each: over the limit > 0, met (or unmeasured) <= 0
    assert trials[0].constraints == {"params": 3000.0, "peak_mem_mb": -40.0}
    assert trials[1].constraints == {"params": -500.0, "peak_mem_mb": 0.0}
    assert [t.values for t in trials] == [[0.5, 4000], [0.5, 500]]


def test_an_infeasible_trials_worst_score_is_told_to_optuna():
    """An infeasible trial reports -inf for a maximised metric (trainable.worst_values);
    Optuna takes it as a finished, bad trial, not a failure it would ignore."""
    searcher = _ready("optuna", metric="val_acc", mode="max", limits={"params": 10})
    searcher.suggest("t0")
    searcher.on_trial_complete("t0", {"val_acc": float("-inf"), "params": 99, "epoch": 0})
    (trial,) = _study(searcher).get_trials()
    assert trial.state.name == "COMPLETE" and trial.values == [float("-inf")]
    assert trial.constraints == {"params": 89.0}


def test_hyperopt_refuses_several_objectives():
    with pytest.raises(UsageError, match="--algo hyperopt searches one objective"):
        build_searcher("hyperopt", metric=["a", "b"], mode=["max", "min"], seed=0,
                       num_samples=4)


def test_every_suggestion_is_timed_once():
    searcher = _ready("gp", metric="val_acc", mode="max")
    config = searcher.suggest("timed")
    assert 0.0 <= config["x"] <= 1.0
    seconds = suggest_seconds("timed")
    assert seconds is not None and seconds > 0
    assert suggest_seconds("timed") is None  # taken
