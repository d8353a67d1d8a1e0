"""Hyperparameter importance from a run's Parquet files, with Optuna's
evaluators (fANOVA, PED-ANOVA) on a study rebuilt from the trials, every
trial scored at one budget."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

import pandas as pd

from pipelines.analysis.runs import Run, is_missing, plain_value, scored_epochs
from pipelines.errors import UsageError
from pipelines.records import tables as res

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution

IMPORTANCE_EVALUATORS = ("fanova", "ped_anova")


MIN_TRIALS_FOR_IMPORTANCE = 4  # fewer finished trials say nothing about importance


def importance(run: Run, evaluator: str = "fanova", seed: int = 0,
               budget: int | None = None) -> pd.Series:
    """Each searched hyperparameter's share of the variance of the score (Optuna's
    fANOVA or PED-ANOVA, on a study rebuilt from the Parquet), largest first.

    Scores are compared at one budget, `budget` epochs (default: the deepest
    epoch every scored trial reached; under ASHA, its first rung): comparing a
    trial's score after 1 epoch with another's after 8 would mostly measure
    how long each was trained. Every trial that reached the budget counts with
    its best score up to it; a run without epochs (trials brought from another
    tool) compares each trial's best_<metric>, and its epoch is None. The Series'
    `attrs` give the epoch, the number of trials and the evaluator; it is empty
    if fewer than 4 trials were scored or nothing was searched.
    """
    import optuna

    if evaluator not in IMPORTANCE_EVALUATORS:
        raise UsageError(f"unknown importance evaluator {evaluator!r}; choose one of "
                         f"{', '.join(IMPORTANCE_EVALUATORS)}")
    empty = pd.Series(dtype="float64", name="importance")
    if not run.space:  # nothing searched: nothing to rank
        return empty
    epoch, scores = scores_at_budget(run, budget)
    study = study_from_scores(run, scores)
    if len(study.trials) < MIN_TRIALS_FOR_IMPORTANCE:
        return empty
    evaluators = {
        "fanova": lambda: optuna.importance.FanovaImportanceEvaluator(seed=seed),
        "ped_anova": lambda: optuna.importance.PedAnovaImportanceEvaluator(),
    }
    shares = optuna.importance.get_param_importances(
        study, evaluator=evaluators[evaluator](), normalize=True)
    out = pd.Series(shares, name="importance", dtype="float64").sort_values(ascending=False)
    out.attrs.update(epoch=epoch, trials=len(study.trials), evaluator=evaluator)
    return out


def scores_at_budget(run: Run,
                     budget: int | None = None) -> tuple[int | None, dict[str, float]]:
    """(epoch E, {trial_id: best score up to E}) for the trials that reached E;
    E is `budget`, or by default the deepest epoch every scored trial reached.
    A run without epochs (trials brought from another tool) gives (None, each
    trial's best_<metric>) unless `budget` asks for an epoch."""
    if run.epochs.empty and budget is None:
        best = run.trials.set_index("trial_id")[f"best_{run.metric}"].astype(float)
        return None, {str(trial): float(score) for trial, score in best.items()
                      if math.isfinite(score)}
    e = scored_epochs(run.epochs, run.metric)
    if e.empty:
        return 0, {}
    reached = e.groupby("trial_id")["epoch"].max()
    epoch = int(reached.min()) if budget is None else budget
    upto = e[e["trial_id"].isin(reached.index[reached >= epoch]) & (e["epoch"] <= epoch)]
    by_trial = upto.groupby("trial_id")[run.metric]
    best = by_trial.max() if run.mode == "max" else by_trial.min()
    return epoch, {str(trial): float(score) for trial, score in best.items()}


def study_from_scores(run: Run, scores: dict[str, float]) -> optuna.Study:
    """An in-memory Optuna study: each scored trial's searched parameters
    (distributions from run.json's space) with its score."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distributions = {name: _distribution(spec) for name, spec in run.space.items()}
    direction: Literal["maximize", "minimize"] = "maximize" if run.mode == "max" \
        else "minimize"
    study = optuna.create_study(direction=direction)
    for _, row in run.trials[run.trials["trial_id"].isin(list(scores))].iterrows():
        params = {name: _param_value(row.get(res.CONFIG_PREFIX + name), dist)
                  for name, dist in distributions.items()}
        if any(v is _UNUSABLE for v in params.values()):
            continue
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions=distributions, value=scores[row["trial_id"]]))
    return study


def _distribution(spec: dict) -> BaseDistribution:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    kind = spec["type"]
    if kind == "Choice":
        return CategoricalDistribution(tuple(spec["options"]))
    if kind == "IntUniform":
        return IntDistribution(spec["low"], spec["high"], log=spec.get("log", False))
    return FloatDistribution(spec["low"], spec["high"], log=kind == "LogUniform")


_UNUSABLE = object()  # a value outside its distribution: the trial is left out


def _param_value(value: float | str | None, distribution: BaseDistribution) -> object:
    """The value as `distribution` holds it, or _UNUSABLE if it holds no such value."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if isinstance(distribution, CategoricalDistribution):
        choice = None if is_missing(value) else plain_value(value)  # None may be a choice
        matches = [c for c in distribution.choices if c == choice]
        return matches[0] if matches else _UNUSABLE
    if value is None or is_missing(value) \
            or not isinstance(distribution, (IntDistribution, FloatDistribution)):
        return _UNUSABLE
    number = int(value) if isinstance(distribution, IntDistribution) else float(value)
    return number if distribution.low <= number <= distribution.high else _UNUSABLE
