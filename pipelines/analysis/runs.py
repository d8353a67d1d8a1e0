"""Analyse runs from their Parquet files alone: load one or several runs, rank
trials, take the best configuration, estimate hyperparameter importance with
Optuna's evaluators, and trace the best score found against the budget spent.

Everything here reads what `pipelines.run` wrote (see pipelines.records.tables for
the schema); nothing needs Ray, the original Optuna study or the trainer.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.analysis.ranking import leaderboard
from pipelines.errors import UsageError
from pipelines.records import tables as res
from pipelines.records.run_record import read_run_json
from pipelines.records.storage import Location, first_line, resolve


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
        """{parameter: description} as pipelines.search.space.describe wrote it."""
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
    return concat_runs(runs)


def concat_runs(runs: list[Run]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The runs' trials and epochs, each concatenated with a `run` column (run_names)."""
    names = run_names(runs)
    trials = pd.concat([r.trials.assign(run=n) for r, n in zip(runs, names)], ignore_index=True)
    epochs = pd.concat([r.epochs.assign(run=n) for r, n in zip(runs, names)], ignore_index=True)
    return trials, epochs


def config_of(row: pd.Series) -> dict:
    """A trial row's configuration, as the trainer received it: a Parquet column
    that mixed ints with missing values reads back as floats, so integral floats
    of integer fields are ints again."""
    from pipelines.training.tasks import TASKS

    types = {f.name: str(f.type) for t in TASKS.values()
             for f in dataclasses.fields(t.config_class)}
    config = {}
    for label, value in row.items():
        column = str(label)
        if not column.startswith(res.CONFIG_PREFIX) or is_missing(value):
            continue
        key = column.removeprefix(res.CONFIG_PREFIX)
        value = plain_value(value)
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


def is_missing(value: object) -> bool:
    """Whether a table cell holds no value (None, NaN or pandas' NA)."""
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def plain_value(value: object) -> object:
    """numpy scalars to Python ones, so configs compare and serialise cleanly."""
    return value.item() if isinstance(value, np.generic) else value


def scored_epochs(epochs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Epochs with a finite score, leaving out the epoch whose training loss
    diverged (its evaluation ran on NaN weights), as pipelines.records.tables does:
    what the figures draw and importance compares."""
    if metric not in epochs:
        return epochs.iloc[:0]
    ok = np.isfinite(epochs[metric].astype(float))
    if "train_loss" in epochs:
        ok &= np.isfinite(epochs["train_loss"].astype(float))
    return epochs[ok]
