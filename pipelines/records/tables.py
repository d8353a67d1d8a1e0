"""The results of a run, in Parquet: the schema's one home, and atomic writes.

trials.parquet: one row per trial; epochs.parquet: one row per trial and
epoch, with a column for every number the trainer reported, whatever its name
(not Tune's bookkeeping); steps.parquet: the training loss per step window
(LOSS_WINDOWS of an epoch, pipelines.training.loop). All are rewritten atomically (see
pipelines.records.storage) as results arrive, so a reader never sees a
half-written file, and a run in progress is readable.
"""

from __future__ import annotations

import json
import math
import numbers
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd

from pipelines.records.diagnosis import DIAGNOSIS_COLUMNS, diagnose
from pipelines.records.storage import Location, parquet_bytes

BASE_EPOCH_COLUMNS = {  # name -> pandas dtype; the trainer's other metrics follow
    "trial_id": "string", "epoch": "int64", "train_loss": "float64", "val_loss": "float64",
    "lr": "float64", "epoch_s": "float64", "images_per_s": "float64",
    "diverged": "boolean",  # the trainer said so, or its train_loss was not finite
    "node_id": "string",  # the Ray node the epoch ran on: a retried trial may move
    "ended_at": "float64",  # unix time the driver received the epoch: orders epochs in time
}
# What Tune adds to every result (ray.tune.result's AUTO_RESULT_KEYS, DEBUG_METRICS and
# the flags of its function API): bookkeeping, not the trainer's metrics.
TUNE_RESULT_KEYS = frozenset({
    "training_iteration", "iterations_since_restore", "time_this_iter_s", "time_total_s",
    "time_since_restore", "timesteps_total", "timesteps_since_restore", "episodes_total",
    "timestamp", "date", "hostname", "pid", "node_ip", "done", "trial_id", "experiment_id",
    "experiment_tag", "config", "checkpoint_dir_name", "should_checkpoint", "__duplicate__",
    "perf",
})


def epoch_columns(metrics: tuple[str, ...] = ()) -> dict[str, str]:
    """epochs.parquet's schema for a trainer that reports `metrics` (numbers) beyond
    the base columns."""
    return _with_metrics({m: "float64" for m in metrics})


def _with_metrics(metrics: dict[str, str]) -> dict[str, str]:
    """The base columns, then `metrics` ({name: dtype}): a metric first reported in a
    later epoch adds a column at the end, so each rewrite only extends the schema."""
    return {**BASE_EPOCH_COLUMNS,
            **{m: d for m, d in metrics.items() if m not in BASE_EPOCH_COLUMNS}}


LR_CURVE_COLUMNS = {  # curve.parquet of an LR range test (pipelines.lr_range)
    "step": "int64", "lr": "float64", "effective_lr": "float64", "loss": "float64",
    "smoothed_loss": "float64",
}
BATCH_PROBE_COLUMNS = {  # probes.parquet of the batch size finder (pipelines.batch_size)
    "batch_size": "int64", "peak_mem_mb": "float64", "fits": "bool",
}
STEP_COLUMNS = {  # steps.parquet: a row per trial and step window
    "trial_id": "string", "epoch": "int64",
    "step": "int64",  # the optimizer step at the window's end, from 1, counted across epochs
    "train_loss": "float64",  # mean per example over the window's steps (penalties excluded)
    "lr": "float64",  # the optimizer's learning rate at the window's last step
}
STEPS_KEY = "loss_windows"  # an epoch's report: its windows, [step, train_loss, lr] each
# "infeasible": a constraint's limit was exceeded at the trial's start; it trained no epoch.
# "early_stopped": by the sweep's scheduler (ASHA); "no_improvement": by its own `patience`
STOP_REASONS = ("completed", "early_stopped", "no_improvement", "diverged", "error",
                "infeasible")
NO_IMPROVEMENT_KEY = "no_improvement"  # the last report of a trial its patience stopped
# what Tune ranks a report's checkpoint by (pipelines.tuning.trainable.checkpoint_rank)
CHECKPOINT_RANK_KEY = "checkpoint_rank"
NOT_EPOCH_METRICS = frozenset({NO_IMPROVEMENT_KEY, CHECKPOINT_RANK_KEY})  # in a report
# What a trial costs, measured by the built-in trainers (a sweep's own trainable may
# report any of them): reported with every epoch, kept per trial in trials.parquet.
COST_COLUMNS = {
    "params": "Int64",  # trainable parameters
    # one training step's peak memory: torch.cuda.max_memory_allocated on a GPU, the
    # process's resident-set growth on a CPU (pipelines.training.cost)
    "peak_mem_mb": "float64",
    "latency_ms": "float64",  # inference per image at the evaluation batch
    "train_s": "float64",  # training time, validation excluded
}
# Constraints checked when a trial starts, before it trains (the model built, one step)
START_CONSTRAINTS = ("params", "peak_mem_mb")
INFEASIBLE_KEY = "infeasible"  # a trial's one report when it exceeds a start constraint
CONFIG_PREFIX = "config/"


def objective_column(metric: str) -> str:
    """trials.parquet's column for an objective: a cost column as it is, an epoch
    metric as its best over the trial's epochs (best_<metric>)."""
    return metric if metric in COST_COLUMNS else f"best_{metric}"


Objectives = tuple[tuple[str, str], ...]  # (metric, mode) each; the first is the primary


def trial_columns(metric: str, objectives: Objectives = ()) -> dict[str, str]:
    """trials.parquet's schema (before the config/ columns) for a sweep on `metric`,
    and on further `objectives` (each epoch metric's best gets a column)."""
    more = {objective_column(m): "float64" for m, _ in objectives
            if m != metric and m not in COST_COLUMNS}
    return {
        "trial_id": "string", "status": "string", "stop_reason": "string", "epochs": "int64",
        f"best_{metric}": "float64", "best_epoch": "Int64", f"last_{metric}": "float64",
        "wall_s": "float64", "node_ip": "string", "node_id": "string", "failures": "int64",
        # the optimizer's peak lr: config/lr (per 256 examples) * config/batch_size / 256,
        # as the trainer reported it
        "effective_lr": "float64",
        "error": "string",  # an errored trial's exception, its last line
        **more, **COST_COLUMNS,
        "suggest_s": "float64",  # the searcher's time to suggest the trial's configuration
        "feasible": "boolean",  # False: it broke a constraint (never ranked)
        # what its training-loss curve says of its learning rate (pipelines.records.diagnosis)
        **DIAGNOSIS_COLUMNS,
    }


@dataclass
class TrialRecord:
    """What the driver knows about one trial; epochs keyed by number, so a
    retried or restored trial that reports an epoch again replaces it."""

    trial_id: str
    config: dict[str, Any]
    started: float
    ended: float | None = None
    status: str = "RUNNING"
    error: bool = False
    error_message: str | None = None  # the exception's last line (Tune's error file)
    diverged: bool = False
    epochs: dict[int, dict[str, Any]] = field(default_factory=dict)
    node_ip: str | None = None  # where its latest epoch ran (Tune fills it in)
    node_id: str | None = None  # Ray's node id: unique even for nodes sharing an IP
    failures: int = 0  # failed attempts (exceptions, dead workers or nodes): Tune's count
    effective_lr: float = math.nan  # the optimizer's peak lr, as the trainer reported it
    costs: dict[str, float] = field(default_factory=dict)  # COST_COLUMNS: the latest of each
    infeasible: bool = False  # over a start constraint: it reported once and trained nothing
    suggest_s: float | None = None  # the searcher's time to suggest its configuration
    # {epoch: its step windows, (step, train_loss, lr) each}: steps.parquet's rows
    steps: dict[int, list[tuple[int, float, float]]] = field(default_factory=dict)
    no_improvement: bool = False  # its own patience stopped it

    def __setstate__(self, state: dict[str, Any]) -> None:
        # records pickled (Tune's snapshot) before a field existed get its default
        defaults = {"costs": {}, "infeasible": False, "suggest_s": None, "steps": {},
                    "no_improvement": False}
        self.__dict__.update({**defaults, **state})

    def add_costs(self, result: dict[str, Any]) -> None:
        """Keep the cost columns a result reports: the latest value of each, but of
        the start costs (params, peak_mem_mb) the first, the one the trial was judged
        by when it started (a resumed trial measures its step again, and a CPU's
        measure varies)."""
        for k in COST_COLUMNS:
            if k in result and _is_metric(result[k]):
                if k in START_CONSTRAINTS:
                    self.costs.setdefault(k, result[k])
                else:
                    self.costs[k] = result[k]

    def mark_infeasible(self, result: dict[str, Any]) -> None:
        """The trial's one report: it exceeded a start constraint and trained nothing.
        Only its start costs were measured (the report's other objectives hold the
        worst values the searcher is told, not measurements)."""
        self.infeasible = True
        self.add_costs({k: result[k] for k in START_CONSTRAINTS if k in result})
        self.node_ip = result.get("node_ip", self.node_ip)
        self.node_id = result.get("node_id", self.node_id)

    def add_epoch(self, result: dict[str, Any]) -> None:
        """Keep one reported epoch: the base columns (None where not reported) and
        every other number or bool the trainer reported, not Tune's bookkeeping; the
        cost columns go to the trial (add_costs)."""
        self.add_costs(result)
        epoch = int(result["epoch"])
        if isinstance(result.get(STEPS_KEY), list):
            self.steps[epoch] = [(int(s), float(loss), float(lr))
                                 for s, loss, lr in result[STEPS_KEY]]
        self.no_improvement = bool(result.get(NO_IMPROVEMENT_KEY))
        row = {name: result.get(name) for name in BASE_EPOCH_COLUMNS}
        row.update({k: v for k, v in result.items() if k not in row and k not in COST_COLUMNS
                    and k not in TUNE_RESULT_KEYS and k not in NOT_EPOCH_METRICS
                    and _is_metric(v)})
        diverged = bool(result.get("diverged")) or not _finite_or_none(row["train_loss"])
        row["diverged"] = diverged
        self.effective_lr = result.get("effective_lr", self.effective_lr)
        row["trial_id"] = self.trial_id
        row["ended_at"] = time.time()
        self.epochs[epoch] = row
        self.diverged = self.diverged or diverged
        self.node_ip = result.get("node_ip", self.node_ip)
        self.node_id = result.get("node_id", self.node_id)

    def stop_reason(self, max_epochs: int,
                    constraints: Mapping[str, float] | None = None) -> str | None:
        if self.error:
            return "error"
        if self.diverged:
            return "diverged"
        if self.ended is None:
            return None
        if not self.feasible(constraints or {}):
            return "infeasible"
        if self.no_improvement:
            return "no_improvement"
        return "completed" if max(self.epochs, default=0) >= max_epochs else "early_stopped"

    def feasible(self, constraints: Mapping[str, float]) -> bool:
        """False once it broke a constraint: over a limit at its start, or a cost it
        reported above one (a cost never reported breaks nothing)."""
        return not self.infeasible and not violations(self.costs, constraints)

    def scores(self, metric: str) -> dict[int, float]:
        """{epoch: score}, leaving out epochs without a finite score and the epoch
        whose training diverged (its evaluation ran on NaN weights)."""
        return {e: row[metric] for e, row in sorted(self.epochs.items())
                if _finite(row.get(metric)) and not _diverged(row)}

    def summary(self, metric: str, mode: str, max_epochs: int, now: float,
                objectives: Objectives = (),
                constraints: Mapping[str, float] | None = None) -> dict[str, Any]:
        scores = self.scores(metric)
        best_epoch = _best(scores, mode)
        last = max(self.epochs, default=None)
        last_score = self.epochs[last].get(metric) if last is not None else None
        row = {
            "trial_id": self.trial_id, "status": self.status,
            "stop_reason": self.stop_reason(max_epochs, constraints), "epochs": len(self.epochs),
            f"best_{metric}": scores[best_epoch] if best_epoch is not None else math.nan,
            "best_epoch": best_epoch,
            f"last_{metric}": math.nan if last_score is None else last_score,
            "wall_s": (self.ended or now) - self.started, "node_ip": self.node_ip,
            "node_id": self.node_id, "failures": self.failures,
            "effective_lr": self.effective_lr, "error": self.error_message,
        }
        for other, other_mode in objectives:  # each further epoch objective: its own best
            if other != metric and other not in COST_COLUMNS:
                other_scores = self.scores(other)
                at = _best(other_scores, other_mode)
                row[objective_column(other)] = math.nan if at is None else other_scores[at]
        row.update({k: self.costs.get(k) for k in COST_COLUMNS})
        row["suggest_s"] = self.suggest_s
        row["feasible"] = self.feasible(constraints or {})
        windows = [(e, loss) for e, rows in sorted(self.steps.items()) for _, loss, _ in rows]
        row.update(diagnose([e for e, _ in windows], [loss for _, loss in windows]))
        row.update({CONFIG_PREFIX + k: v for k, v in self.config.items()})
        return row


def violations(costs: Mapping[str, Any], limits: Mapping[str, float]) -> list[str]:
    """The limits `costs` break, as 'params 2,345,678 > 1,000,000' (one per limit); a
    cost not measured breaks none."""
    broken = []
    for name, limit in limits.items():
        value = costs.get(name)
        if value is not None and _is_metric(value) and not math.isnan(value) and value > limit:
            broken.append(f"{name} {value:,.6g} > {limit:,.6g}")
    return broken


def _best(scores: dict[int, float], mode: str) -> int | None:
    """The epoch of the best score (max or min), None without one."""
    return (max if mode == "max" else min)(scores, key=scores.__getitem__) if scores else None


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _finite_or_none(value: float | None) -> bool:
    return value is None or math.isfinite(value)


def _diverged(row: dict[str, Any]) -> bool:
    """An epoch's divergence; rows recorded before epochs kept the flag go by train_loss."""
    flag = row.get("diverged")
    return bool(flag) if flag is not None else not _finite(row.get("train_loss", 0.0))


def _is_metric(value: object) -> bool:
    """A value epochs.parquet keeps: a number or a bool (numpy's too), not text or a dict."""
    return isinstance(value, (numbers.Real, np.bool_))


def trials_frame(records: list[TrialRecord], *, metric: str, mode: str, max_epochs: int,
                 now: float, objectives: Objectives = (),
                 constraints: Mapping[str, float] | None = None) -> pd.DataFrame:
    """trials.parquet: a row per trial; running trials' wall_s run to `now` (unix s)."""
    rows = [r.summary(metric, mode, max_epochs, now, objectives, constraints) for r in records]
    columns = trial_columns(metric, objectives)
    frame = pd.DataFrame(rows, columns=list(columns) + _config_columns(rows))
    return frame.astype(columns)


def steps_frame(records: list[TrialRecord]) -> pd.DataFrame:
    """steps.parquet's rows of `records`: a row per trial and step window."""
    rows = [(r.trial_id, epoch, step, loss, lr) for r in records
            for epoch, windows in sorted(r.steps.items()) for step, loss, lr in windows]
    return pd.DataFrame(rows, columns=list(STEP_COLUMNS)).astype(STEP_COLUMNS)


def _config_columns(rows: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        seen.update({k: None for k in row if k.startswith(CONFIG_PREFIX)})
    return list(seen)


def epochs_frame(records: list[TrialRecord], metrics: tuple[str, ...] = ()) -> pd.DataFrame:
    """One row per trial and epoch: the base columns, `metrics` (even if no trial
    reported them yet), then every other metric the trials reported, in the order
    first seen; an epoch that lacks one has NaN there. Rewritten as epochs arrive,
    the file only gains columns: none is dropped, and none changes its dtype (unless
    a metric reported as a bool later reports a number)."""
    rows = [row for r in records for _, row in sorted(r.epochs.items())]
    columns = _with_metrics({**{m: "float64" for m in metrics}, **_metric_dtypes(rows)})
    return pd.DataFrame(rows, columns=list(columns)).astype(columns)


def _metric_dtypes(rows: list[dict[str, Any]]) -> dict[str, str]:
    """{metric: dtype} of the non-base keys in `rows`, in the order first reported:
    "boolean" if every value is a bool, else "float64" (ints too: a column that
    misses values cannot hold ints)."""
    dtypes: dict[str, str] = {}
    for row in rows:
        for k, v in row.items():
            if k not in BASE_EPOCH_COLUMNS and dtypes.get(k) != "float64":
                dtypes[k] = "boolean" if isinstance(v, (bool, np.bool_)) else "float64"
    return dtypes


def write_parquet(frame: pd.DataFrame, where: Location) -> None:
    where.write_bytes(parquet_bytes(frame))  # serialised first: a failure writes nothing


def write_json(data: dict[str, Any], where: Location) -> None:
    where.write_bytes((json.dumps(data, indent=2, default=str) + "\n").encode())


def read_parquet(where: Location) -> pd.DataFrame:
    return pd.read_parquet(where.path, filesystem=where.fs)


def read_json(where: Location) -> dict[str, Any]:
    return json.loads(where.read_bytes())
