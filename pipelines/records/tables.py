"""The results of a run, in Parquet: the schema's one home, and atomic writes.

trials.parquet: one row per trial; epochs.parquet: one row per trial and
epoch. Both are rewritten atomically (see pipelines.records.storage) as results
arrive, so a reader never sees a half-written file, and a run in progress is
readable.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from pipelines.records.storage import Location, parquet_bytes

BASE_EPOCH_COLUMNS = {  # name -> pandas dtype; the task's val_* metrics follow val_loss
    "trial_id": "string", "epoch": "int64", "train_loss": "float64", "val_loss": "float64",
    "lr": "float64", "epoch_s": "float64", "images_per_s": "float64",
    "node_id": "string",  # the Ray node the epoch ran on: a retried trial may move
    "ended_at": "float64",  # unix time the driver received the epoch: orders epochs in time
}
METRIC_PREFIX = "val_"  # a trainer's reported validation metrics (val_acc, val_miou, ...)


def epoch_columns(metrics: tuple[str, ...] = ("val_acc",)) -> dict[str, str]:
    """epochs.parquet's schema for a task whose trainer reports `metrics`."""
    columns: dict[str, str] = {}
    for name, dtype in BASE_EPOCH_COLUMNS.items():
        columns[name] = dtype
        if name == "val_loss":
            columns.update({m: "float64" for m in metrics if m not in BASE_EPOCH_COLUMNS})
    return columns


EPOCH_COLUMNS = epoch_columns()  # classification's
LR_CURVE_COLUMNS = {  # curve.parquet of an LR range test (pipelines.lr_range)
    "step": "int64", "lr": "float64", "effective_lr": "float64", "loss": "float64",
    "smoothed_loss": "float64",
}
STOP_REASONS = ("completed", "early_stopped", "diverged", "error")
CONFIG_PREFIX = "config/"


def trial_columns(metric: str) -> dict[str, str]:
    """trials.parquet's schema (before the config/ columns) for a sweep on `metric`."""
    return {
        "trial_id": "string", "status": "string", "stop_reason": "string", "epochs": "int64",
        f"best_{metric}": "float64", "best_epoch": "Int64", f"last_{metric}": "float64",
        "wall_s": "float64", "node_ip": "string", "node_id": "string", "failures": "int64",
        # the optimizer's peak lr: config/lr (per 256 examples) * config/batch_size / 256,
        # as the trainer reported it
        "effective_lr": "float64",
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
    diverged: bool = False
    epochs: dict[int, dict[str, Any]] = field(default_factory=dict)
    node_ip: str | None = None  # where its latest epoch ran (Tune fills it in)
    node_id: str | None = None  # Ray's node id: unique even for nodes sharing an IP
    failures: int = 0  # failed attempts (exceptions, dead workers or nodes): Tune's count
    effective_lr: float = math.nan  # the optimizer's peak lr, as the trainer reported it

    def add_epoch(self, result: dict[str, Any]) -> None:
        row = {name: result.get(name) for name in BASE_EPOCH_COLUMNS}
        row.update({k: v for k, v in result.items() if k.startswith(METRIC_PREFIX)
                    and k not in row and isinstance(v, (int, float)) and not isinstance(v, bool)})
        self.effective_lr = result.get("effective_lr", self.effective_lr)
        row["trial_id"] = self.trial_id
        row["ended_at"] = time.time()
        self.epochs[int(result["epoch"])] = row
        self.diverged = self.diverged or bool(result.get("diverged"))
        self.node_ip = result.get("node_ip", self.node_ip)
        self.node_id = result.get("node_id", self.node_id)

    def stop_reason(self, max_epochs: int) -> str | None:
        if self.error:
            return "error"
        if self.diverged:
            return "diverged"
        if self.ended is None:
            return None
        return "completed" if max(self.epochs, default=0) >= max_epochs else "early_stopped"

    def scores(self, metric: str) -> dict[int, float]:
        """{epoch: score}, leaving out epochs without a finite score and the epoch
        whose training loss diverged (its evaluation ran on NaN weights)."""
        return {e: row[metric] for e, row in sorted(self.epochs.items())
                if _finite(row.get(metric)) and _finite(row.get("train_loss", 0.0))}

    def summary(self, metric: str, mode: str, max_epochs: int, now: float) -> dict[str, Any]:
        scores = self.scores(metric)
        best_epoch = (max if mode == "max" else min)(scores, key=scores.__getitem__) \
            if scores else None
        last = max(self.epochs, default=None)
        row = {
            "trial_id": self.trial_id, "status": self.status,
            "stop_reason": self.stop_reason(max_epochs), "epochs": len(self.epochs),
            f"best_{metric}": scores[best_epoch] if best_epoch is not None else math.nan,
            "best_epoch": best_epoch,
            f"last_{metric}": self.epochs[last][metric] if last is not None else math.nan,
            "wall_s": (self.ended or now) - self.started, "node_ip": self.node_ip,
            "node_id": self.node_id, "failures": self.failures,
            "effective_lr": self.effective_lr,
        }
        row.update({CONFIG_PREFIX + k: v for k, v in self.config.items()})
        return row


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def trials_frame(records: list[TrialRecord], *, metric: str, mode: str, max_epochs: int,
                 now: float) -> pd.DataFrame:
    """trials.parquet: a row per trial; running trials' wall_s run to `now` (unix s)."""
    rows = [r.summary(metric, mode, max_epochs, now) for r in records]
    columns = trial_columns(metric)
    frame = pd.DataFrame(rows, columns=list(columns) + _config_columns(rows))
    return frame.astype(columns)


def _config_columns(rows: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        seen.update({k: None for k in row if k.startswith(CONFIG_PREFIX)})
    return list(seen)


def epochs_frame(records: list[TrialRecord],
                 metrics: tuple[str, ...] = ("val_acc",)) -> pd.DataFrame:
    """One row per trial and epoch; `metrics`: the columns an empty frame gets
    (otherwise the val_* metrics the trials reported)."""
    rows = [row for r in records for _, row in sorted(r.epochs.items())]
    reported = {k: None for row in rows for k in row
                if k.startswith(METRIC_PREFIX) and k not in BASE_EPOCH_COLUMNS}
    columns = epoch_columns(tuple(reported) if rows else metrics)
    return pd.DataFrame(rows, columns=list(columns)).astype(columns)


def write_parquet(frame: pd.DataFrame, where: Location) -> None:
    where.write_bytes(parquet_bytes(frame))  # serialised first: a failure writes nothing


def write_json(data: dict[str, Any], where: Location) -> None:
    where.write_bytes((json.dumps(data, indent=2, default=str) + "\n").encode())


def read_parquet(where: Location) -> pd.DataFrame:
    return pd.read_parquet(where.path, filesystem=where.fs)


def read_json(where: Location) -> dict[str, Any]:
    return json.loads(where.read_bytes())
