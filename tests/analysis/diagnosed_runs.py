"""Runs whose trials recorded step windows (steps.parquet), built through the
records' own path (TrialRecord.add_epoch with the trainer's `loss_windows`), each
trial's curve of a chosen kind so its diagnosis is known."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from pipelines.analysis.runs import Run
from pipelines.records import tables as res
from pipelines.records.storage import resolve

EPOCHS, WINDOWS, STEPS = 3, 10, 20  # epochs, windows an epoch, optimizer steps an epoch
CHANCE = math.log(10)
_T = np.arange(1, EPOCHS * WINDOWS + 1) / WINDOWS
CURVES = {  # each kind's training loss per window, and the label the rule gives it
    "ok": CHANCE * (0.55 + 0.45 * np.exp(-_T)),
    "slow": CHANCE * (1 - 0.01 * _T),
    "unstable": CHANCE * np.where(_T <= 1.2, 1 - 0.2 * _T, 0.76 + 0.3 * (_T - 1.2)),
    "diverged": np.where(_T <= 1.5, CHANCE * (1 - 0.1 * _T), math.nan),  # NaN: it stops
}
SPACE = {"lr": {"type": "LogUniform", "low": 1e-4, "high": 10.0},
         "batch_size": {"type": "Choice", "options": [128, 256]}}


def record(trial_id: str, kind: str, lr: float, batch_size: int = 256) -> res.TrialRecord:
    """A finished trial whose training loss follows CURVES[kind]; a diverged one stops
    in the epoch its loss became NaN, as the trainer does."""
    rec = res.TrialRecord(trial_id, {"lr": lr, "batch_size": batch_size, "model": "plain_cnn"},
                          started=1000.0)
    curve = CURVES[kind]
    for epoch in range(1, EPOCHS + 1):
        losses = curve[(epoch - 1) * WINDOWS: epoch * WINDOWS]
        windows = [[(epoch - 1) * STEPS + 2 * (i + 1), float(loss), 0.1 * lr]
                   for i, loss in enumerate(losses)]
        blown = not np.isfinite(losses).all()
        if blown:  # the trainer stops within the window that went NaN
            windows = windows[:int(np.argmin(np.isfinite(losses))) + 1]
        score = 0.1 if blown else 0.3 + 0.05 * epoch + 0.02 * math.log10(lr)  # trials differ
        rec.add_epoch({"epoch": epoch, "train_loss": math.nan if blown else float(losses.mean()),
                       "val_loss": 1.0, "val_acc": score,
                       "lr": 0.1 * lr, "epoch_s": 1.0, "images_per_s": 100.0,
                       "effective_lr": lr * batch_size / 256, "diverged": blown,
                       res.STEPS_KEY: windows})
        rec.epochs[epoch]["ended_at"] = 1000.0 + epoch
        if blown:
            break
    rec.diverged = kind == "diverged"
    rec.status, rec.ended = "TERMINATED", 2000.0
    return rec


def meta(space: dict = SPACE) -> dict:
    return {"sweep": "lr_sweep", "algorithm": "random", "scheduler": "none",
            "metric": "val_acc", "mode": "max", "space": space, "status": "finished",
            "budget": {"max_epochs": EPOCHS}}


def kinds_over_lr(kinds: list[str], low: float = 1e-4, high: float = 10.0
                  ) -> list[res.TrialRecord]:
    """A trial of each kind, their lrs log-spaced from `low` to `high` in that order."""
    lrs = np.geomspace(low, high, len(kinds))
    return [record(f"t{i:02d}", kind, float(lr), (128, 256)[i % 2])
            for i, (kind, lr) in enumerate(zip(kinds, lrs))]


def make_run(where: Path, records: list[res.TrialRecord], steps: bool = True) -> Run:
    """The run in memory, as load_run gives it (no steps: a run from before them)."""
    trials = res.trials_frame(records, metric="val_acc", mode="max", max_epochs=EPOCHS,
                              now=3000.0)
    run = Run(resolve(str(where)), trials, res.epochs_frame(records), meta())
    if steps:
        run.steps = res.steps_frame(records)
    return run


def write_run(where: Path, records: list[res.TrialRecord], steps: bool = True) -> str:
    """The run directory pipelines.run would leave: run.json and the Parquet files
    (steps.parquet only if `steps`)."""
    where.mkdir(parents=True)
    at = resolve(str(where))
    res.write_parquet(res.trials_frame(records, metric="val_acc", mode="max",
                                       max_epochs=EPOCHS, now=3000.0), at / "trials.parquet")
    res.write_parquet(res.epochs_frame(records), at / "epochs.parquet")
    if steps:
        res.write_parquet(res.steps_frame(records), at / "steps.parquet")
    (where / "run.json").write_text(json.dumps(meta()))
    return str(where)
