"""Analyse runs from their Parquet files alone: load one or several runs, rank
trials, take the best configuration, estimate hyperparameter importance with
Optuna's evaluators, and trace the best score found against the budget spent.

Everything here reads what `pipelines.run` wrote (see pipelines.records.tables for
the schema); nothing needs Ray, the original Optuna study or the trainer.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pipelines.analysis.objectives import (
    Objective,
    constraints_of,
    objective_columns,
    objectives_of,
    objectives_problem,
)
from pipelines.analysis.ranking import feasible, leaderboard
from pipelines.analysis.space_inference import infer_space
from pipelines.errors import UsageError
from pipelines.records import result_log
from pipelines.records import tables as res
from pipelines.records.run_record import read_run_json
from pipelines.records.storage import Location, first_line, resolve


def empty_steps() -> pd.DataFrame:
    """A steps table without rows, in steps.parquet's schema."""
    return pd.DataFrame(columns=list(res.STEP_COLUMNS)).astype(res.STEP_COLUMNS)


@dataclass
class Run:
    """One run directory: its trials, epochs, step windows and run.json. Where
    run.json has no `space` (trials brought from another tool), meta holds one
    inferred from the trials' config/ columns (pipelines.analysis.space_inference),
    and `space_inferred` says so. `steps`: steps.parquet's training loss per step
    window, empty for a run without the file (written before it, or by a trainer
    of the user's own, which records none)."""

    location: Location
    trials: pd.DataFrame
    epochs: pd.DataFrame
    meta: dict
    space_inferred: bool = False
    steps: pd.DataFrame = field(default_factory=empty_steps)

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
    def objectives(self) -> list[Objective]:
        """[(metric, mode), ...]: run.json's `objectives`, the primary first (a run
        written before several objectives: the metric and mode alone)."""
        return objectives_of(self.meta)

    @property
    def constraints(self) -> dict[str, float]:
        """{column: limit}: run.json's `constraints`, {} where it has none."""
        return constraints_of(self.meta)

    @property
    def space(self) -> dict:
        """{parameter: description} as pipelines.search.space.describe wrote it."""
        return self.meta.get("space", {})


def load_run(path: str) -> Run:
    """A run directory (local path or URI); a UsageError if it is not a readable
    one. A run still in progress loads too: the Parquet files are always whole.
    Tables written by another tool may lack columns of the schema beyond trial_id
    and best_<metric>: they read back empty (a trial without a stop_reason column
    counts as completed, and as feasible), and its trial ids as strings."""
    where = resolve(path, "results directory")
    meta = _checked_meta(read_run_json(where), where)
    metric, objectives = meta["metric"], objectives_of(meta)
    trial_columns = res.trial_columns(metric, tuple(objectives))
    epoch_columns = res.epoch_columns((metric,))
    trials = _read_or_empty(where / "trials.parquet", trial_columns)
    epochs = _read_or_empty(where / "epochs.parquet", epoch_columns)
    scores = dict.fromkeys([f"best_{metric}", *objective_columns(objectives[1:])])
    for table, name, needed in ((trials, "trials.parquet", ("trial_id", *scores)),
                                (epochs, "epochs.parquet",
                                 ("trial_id", "epoch", metric) if len(epochs) else ())):
        absent = [c for c in needed if c not in table]
        if absent:
            names = "the metric" if len(objectives) == 1 else "an objective"
            raise UsageError(f"{where / name} has no {' or '.join(absent)} column; add it "
                             f"(run.json names {metric!r} as {names})")
    trials = _with_schema(trials, trial_columns, {"stop_reason": "completed"})
    # absent, train_loss and diverged mean that no epoch diverged (see diverged_epochs)
    epochs = _with_schema(epochs, {c: d for c, d in epoch_columns.items()
                                   if c not in ("train_loss", "diverged")}, {})
    steps = _read_steps(where / result_log.STEPS_FILE)
    if "space" in meta:
        return Run(where, trials, epochs, meta, steps=steps)
    return Run(where, trials, epochs, {**meta, "space": infer_space(trials)},
               space_inferred=True, steps=steps)


def _read_steps(where: Location) -> pd.DataFrame:
    """steps.parquet, or an empty steps table where the run has none; a file lacking
    a column of the schema is a UsageError, as it can be neither drawn nor ignored."""
    steps = _read_or_empty(where, res.STEP_COLUMNS)
    absent = [c for c in res.STEP_COLUMNS if c not in steps]
    if absent:
        raise UsageError(f"{where} has no {', '.join(absent)} column; remove the file or "
                         f"write it in the schema of pipelines.records.tables.STEP_COLUMNS")
    return steps.assign(trial_id=steps["trial_id"].astype("string"))


def _checked_meta(meta: dict, where: Location) -> dict:
    if meta["mode"] not in ("min", "max"):
        raise UsageError(f"{where}/run.json: mode must be 'min' or 'max', not {meta['mode']!r}")
    problem = objectives_problem(meta)
    if problem:
        raise UsageError(f"{where}/run.json: {problem}")
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


def _with_schema(table: pd.DataFrame, columns: dict[str, str],
                 fill: dict[str, object]) -> pd.DataFrame:
    """`table` with string trial ids and the schema's `columns` it lacks, each holding
    `fill`'s value for it or else missing values."""
    absent = {c: pd.Series(fill.get(c), index=table.index,
                           dtype="Int64" if dtype == "int64" else dtype)  # int64 holds no NA
              for c, dtype in columns.items() if c not in table}
    table = table.assign(**absent)
    return table.assign(trial_id=table["trial_id"].astype("string"))


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


def config_of(row: pd.Series, int_keys: Collection[str] = ()) -> dict[str, Any]:
    """A trial row's configuration, its values as plain Python ones. A Parquet column
    that mixed ints with missing values reads back as floats: integral floats of
    `int_keys` (see int_config_keys) are ints again."""
    config = {}
    for label, value in row.items():
        column = str(label)
        if not column.startswith(res.CONFIG_PREFIX) or is_missing(value):
            continue
        key = column.removeprefix(res.CONFIG_PREFIX)
        value = plain_value(value)
        if key in int_keys and isinstance(value, float) and value.is_integer():
            value = int(value)
        config[key] = value
    return config


def int_config_keys(trials: pd.DataFrame, space: Mapping[str, dict]) -> frozenset[str]:
    """The config keys whose values are ints: by the space where it searched them
    (IntUniform, or a Choice of ints), else a float column holding only integral
    values where some trials lack the key (a column of ints, whole, stays int64)."""
    keys = set()
    for label in trials.columns:
        column = str(label)
        if not column.startswith(res.CONFIG_PREFIX):
            continue
        key, values = column.removeprefix(res.CONFIG_PREFIX), trials[label]
        if key in space:
            if _int_domain(space[key]):
                keys.add(key)
        elif values.dtype == "float64" and values.isna().any():
            present = values.dropna()
            if (present == present.round()).all():
                keys.add(key)
    return frozenset(keys)


def _int_domain(spec: dict) -> bool:
    """Whether a parameter's domain (as run.json describes it) holds only ints."""
    if spec["type"] == "Choice":
        options = [o for o in spec["options"] if o is not None]
        return bool(options) and all(isinstance(o, int) and not isinstance(o, bool)
                                     for o in options)
    return spec["type"] == "IntUniform"


def best_config(run: Run) -> dict[str, Any]:
    """The configuration of the feasible trial with the best score (by the run's mode)."""
    within = feasible(run.trials)
    scored = within.dropna(subset=[res.objective_column(run.metric)])
    if scored.empty:
        broke = len(run.trials) - len(within)
        why = f" ({broke} broke a constraint)" if broke else ""
        fix = ", or loosen the constraints" if broke else ""
        raise UsageError(f"{run.location} has no scored trial yet{why}; wait for one to "
                         f"report{fix}")
    best = leaderboard(scored, run.metric, run.mode, n=1).iloc[0]
    return config_of(best, int_config_keys(run.trials, run.space))


def built_in_trainer(trials: pd.DataFrame) -> bool:
    """Whether the trials ran a trainer of pipelines.training, which reports its
    effective_lr: its config's units (lr per 256 examples, ...) apply."""
    return "effective_lr" in trials and bool(trials["effective_lr"].notna().any())


def is_missing(value: object) -> bool:
    """Whether a table cell holds no value (None, NaN or pandas' NA)."""
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def plain_value(value: object) -> object:
    """numpy scalars to Python ones, so configs compare and serialise cleanly."""
    return value.item() if isinstance(value, np.generic) else value


def scored_epochs(epochs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Epochs with a finite score, leaving out the epoch whose training diverged
    (its evaluation ran on NaN weights), as pipelines.records.tables does: what the
    figures draw and importance compares."""
    if metric not in epochs:
        return epochs.iloc[:0]
    return epochs[scored_mask(epochs, metric)]


def scored_mask(epochs: pd.DataFrame, metric: str) -> pd.Series:
    """Per epoch, whether it has a finite `metric` and its training did not diverge."""
    return pd.Series(np.isfinite(epochs[metric].astype(float)), index=epochs.index) \
        & ~diverged_epochs(epochs)


def diverged_epochs(epochs: pd.DataFrame) -> pd.Series:
    """Per epoch, whether its training diverged: its `diverged` flag, or, in runs
    written before epochs carried one, a train_loss that is not finite."""
    if "train_loss" in epochs:
        blown = pd.Series(~np.isfinite(epochs["train_loss"].astype(float)), index=epochs.index)
    else:
        blown = pd.Series(False, index=epochs.index)
    if "diverged" not in epochs:
        return blown
    flag = epochs["diverged"].astype("boolean")
    return flag.fillna(False).astype(bool) | (flag.isna() & blown)
