"""Analyse runs from their Parquet files alone: load one or several runs, rank
trials, take the best configuration, estimate hyperparameter importance with
Optuna's evaluators, and trace the best score found against the budget spent.

Everything here reads what `pipelines.run` wrote (see pipelines.results for
the schema); nothing needs Ray, the original Optuna study or the trainer.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines import results as res
from pipelines.errors import UsageError
from pipelines.run_record import read_run_json
from pipelines.storage import Location, first_line, resolve

IMPORTANCE_EVALUATORS = ("fanova", "ped_anova")
MIN_TRIALS_FOR_IMPORTANCE = 4  # fewer finished trials say nothing about importance


@dataclass
class Run:
    """One run directory: its trials, epochs and run.json."""

    location: Location
    trials: pd.DataFrame
    epochs: pd.DataFrame
    meta: dict

    @property
    def name(self) -> str:
        return self.location.name

    @property
    def metric(self) -> str:
        return self.meta["metric"]

    @property
    def mode(self) -> str:
        return self.meta["mode"]

    @property
    def space(self) -> dict:
        """{parameter: description} as pipelines.space.describe wrote it."""
        return self.meta.get("space", {})


def load_run(path: str) -> Run:
    """A run directory (local path or URI); a UsageError if it is not a readable
    one. A run still in progress loads too: the Parquet files are always whole."""
    where = resolve(path, "results directory")
    meta = _checked_meta(read_run_json(where), where)
    trials = _read_or_empty(where / "trials.parquet", res.trial_columns(meta["metric"]))
    epochs = _read_or_empty(where / "epochs.parquet", res.epoch_columns((meta["metric"],)))
    if f"best_{meta['metric']}" not in trials:
        raise UsageError(f"{where / 'trials.parquet'} has no best_{meta['metric']} column, "
                         f"though run.json names {meta['metric']!r} as the metric")
    return Run(where, trials, epochs, meta)


def _checked_meta(meta: dict, where: Location) -> dict:
    if meta["mode"] not in ("min", "max"):
        raise UsageError(f"{where}/run.json: mode must be 'min' or 'max', not {meta['mode']!r}")
    space = meta.get("space", {})
    if not isinstance(space, dict) or not all(
            isinstance(v, dict) and "type" in v for v in space.values()):
        raise UsageError(f"{where}/run.json: 'space' is not a {{parameter: {{type, ...}}}} "
                         f"mapping as pipelines.run writes it")
    return meta


def _read_or_empty(where: Location, columns: dict) -> pd.DataFrame:
    """A results file, or an empty frame of its schema if no trial has ended yet."""
    try:
        if not where.is_file():
            return pd.DataFrame(columns=list(columns)).astype(columns)
        return res.read_parquet(where)
    except (OSError, ValueError) as e:  # pyarrow's errors are OSError or ValueError
        raise UsageError(f"cannot read {where} ({first_line(e)})") from None


def run_names(runs: list[Run]) -> list[str]:
    """Short unique labels: the run directory's name, with its sweep if names repeat."""
    names = [r.name for r in runs]
    if len(set(names)) < len(names):
        names = [f"{r.meta.get('sweep', '?')}/{r.name}" for r in runs]
    return [n if names.count(n) == 1 else f"{n} ({i + 1})" for i, n in enumerate(names)]


def load_runs(paths: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Several runs' trials and epochs, concatenated with a `run` column (unique
    labels from run_names), to compare algorithms; runs must share a metric."""
    runs = [load_run(p) for p in paths]
    metrics = {r.metric for r in runs}
    if len(metrics) > 1:
        raise UsageError(f"the runs optimise different metrics ({', '.join(sorted(metrics))}); "
                         f"compare runs of one sweep")
    names = run_names(runs)
    trials = pd.concat([r.trials.assign(run=n) for r, n in zip(runs, names)], ignore_index=True)
    epochs = pd.concat([r.epochs.assign(run=n) for r, n in zip(runs, names)], ignore_index=True)
    return trials, epochs


def leaderboard(trials: pd.DataFrame, metric: str, mode: str, n: int = 5) -> pd.DataFrame:
    """The top `n` trials by their best score (trials without one last)."""
    return trials.sort_values(f"best_{metric}", ascending=mode == "min", kind="stable",
                              na_position="last").head(n)


def leaderboard_table(top: pd.DataFrame, metric: str, config_keys) -> pd.DataFrame:
    """The leaderboard as shown on a terminal: id, score, epochs, stop reason and the
    given config keys (those present), without the `config/` prefix."""
    shown = ["trial_id", f"best_{metric}", "best_epoch", "epochs", "stop_reason"]
    shown += [res.CONFIG_PREFIX + k for k in config_keys]
    shown = [c for c in shown if c in top]  # no config columns before any trial ran
    return top[shown].rename(columns=lambda c: c.removeprefix(res.CONFIG_PREFIX))


def config_of(row: pd.Series) -> dict:
    """A trial row's configuration, as the trainer received it: a Parquet column
    that mixed ints with missing values reads back as floats, so integral floats
    of integer fields are ints again."""
    from pipelines.config import CONFIGS

    types = {f.name: str(f.type) for cls in CONFIGS.values() for f in dataclasses.fields(cls)}
    config = {}
    for column, value in row.items():
        if not column.startswith(res.CONFIG_PREFIX) or _missing(value):
            continue
        key = column.removeprefix(res.CONFIG_PREFIX)
        value = _plain(value)
        if types.get(key, "").startswith("int") and isinstance(value, float) \
                and value.is_integer():
            value = int(value)
        config[key] = value
    return config


def best_config(run: Run) -> dict:
    """The configuration of the trial with the best score."""
    scored = run.trials.dropna(subset=[f"best_{run.metric}"])
    if scored.empty:
        raise UsageError(f"{run.location} has no scored trial yet; wait for one to report")
    return config_of(leaderboard(scored, run.metric, run.mode, n=1).iloc[0])


def importance(run: Run, evaluator: str = "fanova", seed: int = 0,
               budget: int | None = None) -> pd.Series:
    """Each searched hyperparameter's share of the variance of the score (Optuna's
    fANOVA or PED-ANOVA, on a study rebuilt from the Parquet), largest first.

    Scores are compared at one budget, `budget` epochs (default: the deepest
    epoch every scored trial reached; under ASHA, its first rung): comparing a
    trial's score after 1 epoch with another's after 8 would mostly measure
    how long each was trained. Every trial that reached the budget counts with
    its best score up to it. The Series' `attrs` give the epoch, the number of
    trials and the evaluator; it is empty if fewer than 4 trials were scored.
    """
    import optuna

    if evaluator not in IMPORTANCE_EVALUATORS:
        raise UsageError(f"unknown importance evaluator {evaluator!r}; choose one of "
                         f"{', '.join(IMPORTANCE_EVALUATORS)}")
    epoch, scores = scores_at_budget(run, budget)
    empty = pd.Series(dtype="float64", name="importance")
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


def scores_at_budget(run: Run, budget: int | None = None) -> tuple[int, dict[str, float]]:
    """(epoch E, {trial_id: best score up to E}) for the trials that reached E;
    E is `budget`, or by default the deepest epoch every scored trial reached."""
    e = run.epochs.dropna(subset=[run.metric])
    e = e[np.isfinite(e[run.metric].astype(float)) & np.isfinite(e["train_loss"].astype(float))]
    if e.empty:
        return 0, {}
    reached = e.groupby("trial_id")["epoch"].max()
    epoch = int(reached.min()) if budget is None else budget
    upto = e[e["trial_id"].isin(reached.index[reached >= epoch]) & (e["epoch"] <= epoch)]
    by_trial = upto.groupby("trial_id")[run.metric]
    best = by_trial.max() if run.mode == "max" else by_trial.min()
    return epoch, best.astype(float).to_dict()


def study_from_scores(run: Run, scores: dict[str, float]):
    """An in-memory Optuna study: each scored trial's searched parameters
    (distributions from run.json's space) with its score."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distributions = {name: _distribution(spec) for name, spec in run.space.items()}
    direction = "maximize" if run.mode == "max" else "minimize"
    study = optuna.create_study(direction=direction)
    for _, row in run.trials[run.trials["trial_id"].isin(list(scores))].iterrows():
        params = {name: _param_value(row.get(res.CONFIG_PREFIX + name), dist)
                  for name, dist in distributions.items()}
        if any(v is _UNUSABLE for v in params.values()):
            continue
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions=distributions, value=scores[row["trial_id"]]))
    return study


def _distribution(spec: dict):
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


def _param_value(value, distribution):
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(distribution, CategoricalDistribution):
        value = None if _missing(value) else _plain(value)  # None may be a choice
        matches = [c for c in distribution.choices if c == value]
        return matches[0] if matches else _UNUSABLE
    if _missing(value):
        return _UNUSABLE
    value = int(value) if isinstance(distribution, IntDistribution) else float(value)
    return value if distribution.low <= value <= distribution.high else _UNUSABLE


def best_so_far(trials: pd.DataFrame, epochs: pd.DataFrame, metric: str,
                mode: str) -> pd.DataFrame:
    """The best score found so far against cumulative training epochs and wall
    time since the run's first epoch began, one curve per run (a `run` column,
    if present, keeps runs apart). Every epoch trained counts as budget, in the
    order epochs ended, so concurrent trials interleave as they ran; an epoch
    whose training diverged counts as budget but not as a score.
    `best_trial_id` is the trial holding the best score at that point."""
    frames = []
    runs = epochs["run"].unique() if "run" in epochs else [None]
    for run in runs:
        e = epochs if run is None else epochs[epochs["run"] == run]
        frames.append(_best_so_far_one(e, metric, mode).assign(run=run))
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return out if "run" in epochs else out.drop(columns="run")


def compare_runs(runs: list[Run]) -> pd.DataFrame:
    """One row per run: algorithm, scheduler, trials, epochs trained, the best
    score, and the training epochs and wall time it took to first reach it."""
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
    return pd.DataFrame(rows)


def _best_so_far_one(epochs: pd.DataFrame, metric: str, mode: str) -> pd.DataFrame:
    columns = ["epochs", "wall_s", f"best_{metric}", "best_trial_id"]
    if epochs.empty:
        return pd.DataFrame(columns=columns)
    if "ended_at" in epochs and epochs["ended_at"].notna().all():
        e = epochs.sort_values("ended_at", kind="stable")
        wall = e["ended_at"] - (e["ended_at"] - e["epoch_s"]).min()  # since the first began
    else:  # runs written before epochs had `ended_at`: trials one by one, in creation order
        e = epochs
        wall = e["epoch_s"].cumsum()
    score = e[metric].astype(float)
    scored = np.isfinite(score) & np.isfinite(e["train_loss"].astype(float))
    score = score.where(scored)  # every epoch counts as budget spent, scored or not
    best = (score.cummax() if mode == "max" else score.cummin()).ffill()
    improved = scored & (score == best) & (best != best.shift())  # ties keep the first
    holder = e["trial_id"].where(improved).ffill()
    out = pd.DataFrame({"epochs": np.arange(1, len(e) + 1), "wall_s": wall.to_numpy(),
                        f"best_{metric}": best.to_numpy(), "best_trial_id": holder.to_numpy()},
                       columns=columns)
    return out.dropna(subset=[f"best_{metric}"])  # before the first score there is no best


def stage_table(summaries: list[dict], metric: str) -> pd.DataFrame:
    """A staged run's per-stage table (run.json's `stage_results`): its trials and
    epochs, the best score in the stage and so far, and what the stage changed."""
    rows = [{"stage": f"{s['stage']} {s['name']}", "trials": s["trials"],
             "epochs": s["epochs"], f"best {metric} (stage)": s["best_in_stage"],
             f"best {metric} so far": s["best_so_far"],
             "changed": _changes(s["changed"])} for s in summaries]
    return pd.DataFrame(rows)


def _changes(changed: dict) -> str:
    if not changed:
        return "kept"
    return ", ".join(f"{name} {_short(old)} -> {_short(new)}"
                     for name, (old, new) in changed.items())


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def _plain(value):
    """numpy scalars to Python ones, so configs compare and serialise cleanly."""
    return value.item() if isinstance(value, np.generic) else value
