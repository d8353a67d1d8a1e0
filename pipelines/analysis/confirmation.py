"""Winners you can trust: a run's top configurations retrained with fresh seeds
(`--confirm`, pipelines.tuning.confirm) summarised per configuration (mean,
sd and a 95% t-interval of the score over its seeds), and the winner named by
mean, with whether the runner-up's interval overlaps it.

confirm.parquet holds one row per retrain (CONFIRM_COLUMNS, then the
configuration's `config/` columns, its seed left out: the seed is a column).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from pipelines.analysis.runs import config_of
from pipelines.records import tables as res
from pipelines.records.run_record import read_run_json
from pipelines.records.storage import Location

__all__ = ["CONFIDENCE", "CONFIRM_COLUMNS", "CONFIRM_FILE", "confirmed_summary",
           "confirmed_winner", "summarise", "verdict"]

CONFIRM_FILE = "confirm.parquet"
CONFIRM_COLUMNS = {  # name -> pandas dtype; the config/ columns follow
    "config_rank": "int64",  # 1..K: the configuration's rank in the search
    "trial_id": "string",  # the search's trial of that configuration (its best)
    "seed": "int64",  # the retrain's fresh seed
    "score": "float64",  # the retrain's best primary metric over its epochs
    "epochs": "int64",  # epochs the retrain ran
    "retrain_id": "string",  # the retrain's trial in <run>/confirm/trials.parquet
}
CONFIDENCE = 0.95  # of the t-interval of a configuration's mean score


def summarise(confirm: pd.DataFrame, mode: str) -> pd.DataFrame:
    """One row per configuration: config_rank, trial_id, n (retrains with a
    score), mean, sd, ci_low, ci_high (the 95% t-interval of the mean; NaN sd
    and interval for n < 2) and its config/ columns; best mean first (`mode`:
    max or min), a configuration without a score last."""
    config_columns = [c for c in confirm.columns if str(c).startswith(res.CONFIG_PREFIX)]
    rows = []
    for _, group in confirm.groupby(["config_rank", "trial_id"], sort=True):
        first = group.iloc[0]
        scores = group["score"].astype(float)
        scores = scores[np.isfinite(scores)]
        n = len(scores)
        mean = float(scores.mean()) if n else math.nan
        sd = float(scores.std(ddof=1)) if n > 1 else math.nan
        half = float(stats.t.ppf((1 + CONFIDENCE) / 2, n - 1)) * sd / math.sqrt(n) \
            if n > 1 else math.nan
        rows.append({"config_rank": int(first["config_rank"]), "trial_id": str(first["trial_id"]),
                     "n": n, "mean": mean, "sd": sd, "ci_low": mean - half,
                     "ci_high": mean + half, **first[config_columns].to_dict()})
    columns = ["config_rank", "trial_id", "n", "mean", "sd", "ci_low", "ci_high",
               *config_columns]
    summary = pd.DataFrame(rows, columns=columns)
    return summary.sort_values(["mean", "config_rank"], ascending=[mode == "min", True],
                               kind="stable", na_position="last").reset_index(drop=True)


def verdict(summary: pd.DataFrame, mode: str) -> str:
    """One line: the winner by mean, whether its interval and the runner-up's
    overlap, and whether the search's top configuration (config_rank 1) stayed
    the winner. `summary` as summarise() returns it."""
    scored = summary[np.isfinite(summary["mean"].astype(float))]
    if scored.empty:
        return "no retrain has a score: no winner"
    best = scored.iloc[0]
    line = (f"winner by mean: configuration {best['config_rank']} (trial {best['trial_id']}), "
            f"{_mean_sd(best)}")
    if len(scored) == 1:
        line += "; the only configuration confirmed"
    else:
        second = scored.iloc[1]
        if not (np.isfinite(best["ci_low"]) and np.isfinite(second["ci_low"])):
            line += (f"; runner-up configuration {second['config_rank']} {_mean_sd(second)} "
                     f"(an interval needs 2 or more seeds)")
        elif best["ci_low"] <= second["ci_high"] and second["ci_low"] <= best["ci_high"]:
            line += (f"; its {CONFIDENCE:.0%} interval overlaps the runner-up's (configuration "
                     f"{second['config_rank']}, {_mean_sd(second)}): the difference may be "
                     f"seed noise")
        else:
            line += (f"; its {CONFIDENCE:.0%} interval is clear of the runner-up's "
                     f"(configuration {second['config_rank']}, {_mean_sd(second)})")
    stayed = int(best["config_rank"]) == 1
    return line + ("; the search's top trial stayed the winner" if stayed else
                   "; the search's top trial did not stay the winner")


def _mean_sd(row: pd.Series) -> str:
    sd = "" if not np.isfinite(row["sd"]) else f" ± {row['sd']:.4g}"
    return f"mean {row['mean']:.4g}{sd} over {row['n']} seed{'s' if row['n'] != 1 else ''}"


def confirmed_summary(run_dir: Location) -> pd.DataFrame | None:
    """summarise() of the run's confirm.parquet; None when the run has none."""
    where = run_dir / CONFIRM_FILE
    if not where.is_file():
        return None
    # run.json's mode is the primary objective's, the one the retrains are scored on
    return summarise(res.read_parquet(where), read_run_json(run_dir)["mode"])


def confirmed_winner(run_dir: Location) -> dict[str, Any] | None:
    """The winner by mean's configuration (its config/ columns, without the
    retrains' seeds) when the run has a confirm.parquet, else None."""
    summary = confirmed_summary(run_dir)
    if summary is None or summary.empty or not np.isfinite(summary["mean"].iloc[0]):
        return None
    return config_of(summary.iloc[0])
