"""The best score found so far against the budget spent, per run, and runs
compared by it."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from pipelines.analysis.ranking import feasible
from pipelines.analysis.runs import Run, run_names, scored_mask


def best_so_far(trials: pd.DataFrame, epochs: pd.DataFrame, metric: str,
                mode: str) -> pd.DataFrame:
    """The best score found so far against cumulative training epochs and wall
    time since the run's first epoch began, one curve per run (a `run` column,
    if present, keeps runs apart). Every epoch trained counts as budget, in the
    order epochs ended, so concurrent trials interleave as they ran; an epoch
    whose training diverged, or of a trial that broke a constraint, counts as
    budget but not as a score. `best_trial_id` is the trial holding the best
    score at that point."""
    frames = []
    runs = epochs["run"].unique() if "run" in epochs else [None]
    broke = trials.drop(index=feasible(trials).index)
    for run in runs:
        e = epochs if run is None else epochs[epochs["run"] == run]
        b = broke if run is None or "run" not in broke else broke[broke["run"] == run]
        frames.append(_best_so_far_one(e, metric, mode, set(b["trial_id"])).assign(run=run))
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return out if "run" in epochs else out.drop(columns="run")


def compare_runs(runs: list[Run]) -> pd.DataFrame:
    """One row per run: algorithm, scheduler (where some run.json gives them), trials,
    epochs trained, the best score, and the training epochs and wall time it took to
    first reach it."""
    rows = []
    for r, name in zip(runs, run_names(runs)):
        curve = best_so_far(r.trials, r.epochs, r.metric, r.mode)
        best_col = f"best_{r.metric}"
        first = curve[curve[best_col] == curve[best_col].iloc[-1]].iloc[0] if len(curve) else None
        rows.append({"run": name, "algorithm": r.meta.get("algorithm"),
                     "scheduler": r.meta.get("scheduler"), "trials": len(r.trials),
                     "epochs_trained": len(r.epochs),
                     best_col: first[best_col] if first is not None else math.nan,
                     "epochs_to_best": int(first["epochs"]) if first is not None else None,
                     "wall_s_to_best": first["wall_s"] if first is not None else math.nan})
    table = pd.DataFrame(rows)
    return table.drop(columns=[c for c in ("algorithm", "scheduler") if table[c].isna().all()])


def _best_so_far_one(epochs: pd.DataFrame, metric: str, mode: str,
                     infeasible: set[str]) -> pd.DataFrame:
    columns = ["epochs", "wall_s", f"best_{metric}", "best_trial_id"]
    if epochs.empty or metric not in epochs:
        return pd.DataFrame(columns=columns)
    if "ended_at" in epochs and epochs["ended_at"].notna().all():
        e = epochs.sort_values("ended_at", kind="stable")
        # since the first epoch began (an epoch without epoch_s: since it ended)
        wall = e["ended_at"] - (e["ended_at"] - e["epoch_s"].fillna(0.0)).min()
    else:  # runs written before epochs had `ended_at`: trials one by one, in creation order
        e = epochs
        wall = e["epoch_s"].cumsum()
    scored = scored_mask(e, metric) & ~e["trial_id"].isin(list(infeasible))
    score = e[metric].astype(float).where(scored)  # every epoch is budget, scored or not
    best = (score.cummax() if mode == "max" else score.cummin()).ffill()
    improved = scored & (score == best) & (best != best.shift())  # ties keep the first
    holder = e["trial_id"].where(improved).ffill()
    out = pd.DataFrame({"epochs": np.arange(1, len(e) + 1), "wall_s": wall.to_numpy(),
                        f"best_{metric}": best.to_numpy(), "best_trial_id": holder.to_numpy()},
                       columns=columns)
    return out.dropna(subset=[f"best_{metric}"])  # before the first score there is no best
