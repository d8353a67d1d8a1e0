"""The Pareto front of a run with several objectives: the feasible, scored trials
that no other feasible trial dominates, that is, none is at least as good on every
objective (each by its mode) and better on one. Trials with equal objectives do not
dominate each other: all of them are on the front or none is."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from pipelines.analysis.objectives import Objective, objective_columns
from pipelines.analysis.ranking import feasible
from pipelines.analysis.runs import Run


def pareto_front(run: Run) -> pd.DataFrame:
    """The run's Pareto front on its objectives (run.json's `objectives`): its rows of
    trials.parquet, best first by the first objective (then the next). A trial lacking
    a finite value of some objective, or breaking a constraint, is not on it; a run
    with one objective has its best trial (all of them, if tied) on its front."""
    return front_of(run.trials, run.objectives)


def front_of(trials: pd.DataFrame, objectives: Sequence[Objective]) -> pd.DataFrame:
    """The rows of `trials` on the Pareto front of `objectives` [(metric, mode), ...],
    best first by the first objective (then the next)."""
    columns = objective_columns(objectives)
    candidates = feasible(trials)
    values = objective_values(candidates, objectives)
    scored = np.isfinite(values).all(axis=1)
    front = candidates[scored][non_dominated(values[scored])]
    return front.sort_values(columns, ascending=[mode == "min" for _, mode in objectives],
                             kind="stable")


def objective_values(trials: pd.DataFrame, objectives: Sequence[Objective]) -> np.ndarray:
    """An n x k array of the trials' objective values turned so that lower is better
    on every column (a max objective negated); NaN where a value is missing."""
    sign = {"min": 1.0, "max": -1.0}
    columns = [sign[mode] * trials[column].to_numpy(dtype=float, na_value=np.nan)
               for column, (_, mode) in zip(objective_columns(objectives), objectives)]
    return np.column_stack(columns) if columns else np.empty((len(trials), 0))


def non_dominated(costs: np.ndarray) -> np.ndarray:
    """Per row of `costs` (n x k, finite, lower is better on every column), whether no
    other row dominates it (is <= on every column and < on one). Rows go in
    lexicographic order, in which a row's dominators all come before it, each checked
    against the front found so far: O(n log n + n f k) for a front of f rows."""
    n = len(costs)
    on_front = np.zeros(n, dtype=bool)
    if n == 0:
        return on_front
    front = np.empty_like(costs)
    size = 0
    for i in np.lexsort(costs.T[::-1]):  # by the first column, ties by the next, ...
        row, found = costs[i], front[:size]
        if not (np.all(found <= row, axis=1) & np.any(found < row, axis=1)).any():
            front[size] = row
            size += 1
            on_front[i] = True
    return on_front
