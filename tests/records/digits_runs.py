"""A user's own trainer and the records a sweep of it leaves, on real data: linear
regression of a handwritten digit's value from its 8x8 pixels (scikit-learn's
load_digits) by full-batch gradient descent. It reports `val_rmse` (lower is better)
and `train_mse`, none of the built-in trainers' metrics (no train_loss, val_loss,
lr, epoch_s); each result carries what Tune adds to every result."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.records import tables as res
from pipelines.records.storage import resolve

SPACE = {  # as pipelines.search.space.describe writes it into run.json
    "lr": {"type": "LogUniform", "low": 1e-3, "high": 1.0},
    "l2": {"type": "LogUniform", "low": 1e-4, "high": 1e-1},
    "steps_per_epoch": {"type": "Choice", "options": [1, 4]},
}
MAX_EPOCHS = 4


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = (digits.data * (255 / 16)).round().astype(np.uint8)  # 0..16 -> 0..255
    x, y = pixels / 255.0, digits.target.astype(np.float64)
    order = np.random.default_rng(0).permutation(len(y))
    train, val = order[:1400], order[1400:]
    return x[train], y[train], x[val], y[val]


def regression_epochs(lr: float, l2: float, steps_per_epoch: int,
                      epochs: int = MAX_EPOCHS) -> list[dict[str, float]]:
    """Per epoch, {"val_rmse", "train_mse"}: gradient descent with step `lr` and L2
    penalty `l2`, `steps_per_epoch` steps an epoch (lr above ~0.2 diverges)."""
    xt, yt, xv, yv = _digits()
    w, b = np.zeros(xt.shape[1]), 0.0
    out = []
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(epochs):
            for _ in range(steps_per_epoch):
                err = xt @ w + b - yt
                w = w - lr * (xt.T @ err / len(yt) + l2 * w)
                b -= lr * float(err.mean())
            out.append({"val_rmse": float(np.sqrt(np.mean((xv @ w + b - yv) ** 2))),
                        "train_mse": float(np.mean((xt @ w + b - yt) ** 2))})
    return out


def tune_result(trial_id: str, epoch: int, metrics: dict[str, Any],
                config: dict[str, Any]) -> dict[str, Any]:
    """A result as the driver's callbacks get it: the trainer's metrics, the epoch and
    node_id the trainable adapter adds, and Tune's bookkeeping."""
    return {**metrics, "epoch": epoch, "node_id": "node-a", "training_iteration": epoch,
            "time_this_iter_s": 0.01, "time_total_s": 0.01 * epoch, "timestamp": 1_700_000_000,
            "date": "2026-01-01_00-00-00", "hostname": "host", "pid": 4242,
            "node_ip": "10.0.0.1", "done": False, "trial_id": trial_id, "config": config,
            "checkpoint_dir_name": None, "time_since_restore": 0.01 * epoch,
            "iterations_since_restore": epoch, "experiment_tag": f"{trial_id}_lr=1"}


def user_records(n: int = 12, seed: int = 0, epochs: int = MAX_EPOCHS) -> list[res.TrialRecord]:
    """`n` finished trials of the digits regression, configs drawn from SPACE."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n):
        config: dict[str, Any] = {"lr": float(10 ** rng.uniform(-3, 0)),
                                  "l2": float(10 ** rng.uniform(-4, -1)),
                                  "steps_per_epoch": int(rng.choice([1, 4]))}
        record = res.TrialRecord(f"u{i:02d}", config, started=1000.0 + i)
        for epoch, metrics in enumerate(regression_epochs(**config, epochs=epochs), start=1):
            record.add_epoch(tune_result(record.trial_id, epoch, metrics, config))
            record.epochs[epoch]["ended_at"] = 1000.0 + i + epoch  # trials interleave
        record.ended, record.status = 1000.0 + i + epochs, "TERMINATED"
        records.append(record)
    return records


def write_user_run(path: Path, records: list[res.TrialRecord], *, metric: str = "val_rmse",
                   mode: str = "min") -> str:
    """A run directory as pipelines.run writes it for a sweep of its own trainable."""
    path.mkdir(parents=True)
    where = resolve(str(path))
    res.write_parquet(res.trials_frame(records, metric=metric, mode=mode,
                                       max_epochs=MAX_EPOCHS, now=3000.0),
                      where / "trials.parquet")
    res.write_parquet(res.epochs_frame(records, metrics=(metric,)), where / "epochs.parquet")
    (path / "run.json").write_text(json.dumps({
        "sweep": "digits_regression", "task": "function", "algorithm": "random",
        "scheduler": "none", "metric": metric, "mode": mode, "space": SPACE,
        "status": "finished", "budget": {"max_epochs": MAX_EPOCHS}}))
    return str(path)
