"""What the figures read from the trials and epochs tables and run.json: the
best trial, each trial's stop reason, the scored trials, the scheduler's rungs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.analysis.ranking import leaderboard, stop_reasons

RUNG_SCHEDULERS = {"asha": "ASHA", "hyperband": "HyperBand"}  # name -> as written


def best_trial_id(trials: pd.DataFrame, meta: dict) -> str | None:
    """The id of the trial with the best score, None when no trial has one."""
    score = f"best_{meta['metric']}"
    if score not in trials or trials[score].isna().all():
        return None
    return str(leaderboard(trials, meta["metric"], meta["mode"], n=1)["trial_id"].iloc[0])


def rung_epochs(meta: dict) -> list[int]:
    """The epochs at which ASHA compares trials (grace, grace*rf, grace*rf^2, ...
    below max_epochs); for HyperBand, those of its most aggressive bracket (Ray's
    HyperBand ignores the grace period); none for other schedulers."""
    budget = meta.get("budget") or {}
    grace, rf = budget.get("grace_period"), budget.get("reduction_factor")
    max_epochs = budget.get("max_epochs")
    if meta.get("scheduler") not in RUNG_SCHEDULERS or not (rf and rf > 1 and max_epochs):
        return []
    if meta["scheduler"] == "hyperband":  # as ray.tune.schedulers.HyperBandScheduler
        s_max = int(np.round(np.log(max_epochs) / np.log(rf)))
        grace = next((r for r in (int(max_epochs * rf ** -s) for s in range(s_max, -1, -1))
                      if r > 0), None)
    rungs, r = [], grace
    while r and r < max_epochs:
        rungs.append(int(r))
        r *= rf
    return rungs


def trial_stop_reasons(trials: pd.DataFrame) -> dict[str, str]:
    """{trial id: stop reason}, RUNNING for a trial that has none yet."""
    if trials.empty:
        return {}
    return {str(t): str(r) for t, r in zip(trials["trial_id"], stop_reasons(trials))}


def scored_trials(trials: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The trials with a best score (none if the table lacks the column)."""
    score = f"best_{metric}"
    return trials.dropna(subset=[score]) if score in trials else trials.iloc[:0]


def column(frame: pd.DataFrame, name: str) -> pd.Series:
    """A column, or NaN for every row when the frame lacks it."""
    return frame[name] if name in frame else pd.Series(np.nan, index=frame.index)
