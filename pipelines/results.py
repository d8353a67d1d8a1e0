"""The results of a run, in Parquet: the schema's one home, and atomic writes.

trials.parquet: one row per trial; epochs.parquet: one row per trial and
epoch. Both are rewritten atomically (temp file + rename) as trials finish,
so a reader never sees a half-written file, and a run in progress is readable.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

EPOCH_COLUMNS = {  # name -> pandas dtype
    "trial_id": "string", "epoch": "int64", "train_loss": "float64", "val_loss": "float64",
    "val_acc": "float64", "lr": "float64", "epoch_s": "float64", "images_per_s": "float64",
}
STOP_REASONS = ("completed", "early_stopped", "diverged", "error")
CONFIG_PREFIX = "config/"


def trial_columns(metric: str) -> dict[str, str]:
    return {
        "trial_id": "string", "status": "string", "stop_reason": "string", "epochs": "int64",
        f"best_{metric}": "float64", "best_epoch": "Int64", f"last_{metric}": "float64",
        "wall_s": "float64", "node_ip": "string",
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

    def add_epoch(self, result: dict[str, Any]) -> None:
        row = {name: result.get(name) for name in EPOCH_COLUMNS}
        row["trial_id"] = self.trial_id
        self.epochs[int(result["epoch"])] = row
        self.diverged = self.diverged or bool(result.get("diverged"))
        self.node_ip = result.get("node_ip", self.node_ip)

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
        best_epoch = (max if mode == "max" else min)(scores, key=scores.get) if scores else None
        last = max(self.epochs, default=None)
        row = {
            "trial_id": self.trial_id, "status": self.status,
            "stop_reason": self.stop_reason(max_epochs), "epochs": len(self.epochs),
            f"best_{metric}": scores.get(best_epoch, math.nan), "best_epoch": best_epoch,
            f"last_{metric}": self.epochs[last][metric] if last is not None else math.nan,
            "wall_s": (self.ended or now) - self.started, "node_ip": self.node_ip,
        }
        row.update({CONFIG_PREFIX + k: v for k, v in self.config.items()})
        return row


def _finite(value) -> bool:
    return value is not None and math.isfinite(value)


def trials_frame(records: list[TrialRecord], *, metric: str, mode: str, max_epochs: int,
                 now: float) -> pd.DataFrame:
    rows = [r.summary(metric, mode, max_epochs, now) for r in records]
    columns = trial_columns(metric)
    frame = pd.DataFrame(rows, columns=list(columns) + _config_columns(rows))
    return frame.astype(columns)


def _config_columns(rows: list[dict]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        seen.update({k: None for k in row if k.startswith(CONFIG_PREFIX)})
    return list(seen)


def epochs_frame(records: list[TrialRecord]) -> pd.DataFrame:
    rows = [row for r in records for _, row in sorted(r.epochs.items())]
    return pd.DataFrame(rows, columns=list(EPOCH_COLUMNS)).astype(EPOCH_COLUMNS)


def _atomic(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide results from other users
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    _atomic(path, lambda tmp: frame.to_parquet(tmp, index=False))


def write_json(data: dict, path: Path) -> None:
    def dump(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2, default=str)
            f.write("\n")

    _atomic(path, dump)
