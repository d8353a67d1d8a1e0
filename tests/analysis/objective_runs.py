"""Runs with two objectives and constraints, as pipelines.run records them for a sweep
file outside the repository, on real data that is not CIFAR-10: linear regression of a
handwritten digit's value (scikit-learn's load_digits) from its `features` most varying
pixels, by full-batch gradient descent. Objectives: val_rmse (min) and params (min:
features + 1 weights). Constraints: params <= MAX_PARAMS, checked at a trial's start (an
over-size trial reports once and trains no epoch, as the built-in trainers do), and
latency_ms <= MAX_LATENCY_MS, reported with every epoch (a trial over it trains and is
scored, and is infeasible all the same)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.records import tables as res
from pipelines.records.storage import resolve

SPACE: dict[str, dict[str, Any]] = {  # as pipelines.search.space.describe writes it
    "lr": {"type": "LogUniform", "low": 0.02, "high": 0.18},  # stable below 0.19
    "features": {"type": "IntUniform", "low": 2, "high": 64, "log": False},
}
OBJECTIVES = (("val_rmse", "min"), ("params", "min"))
MAX_PARAMS = 48  # features <= 47 train
LATENCY_MS_PER_FEATURE = 0.002  # the cost model of latency_ms: one multiply-add per weight
MAX_LATENCY_MS = 0.04  # features <= 20 are feasible
CONSTRAINTS = {"params": MAX_PARAMS, "latency_ms": MAX_LATENCY_MS}
MAX_EPOCHS = 3


@functools.lru_cache(maxsize=1)
def _pixels() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Train and validation pixels (0..1), most varying pixel first, and digit values."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = digits.data / 16.0, digits.target.astype(np.float64)
    x = x[:, np.argsort(-x.var(axis=0), kind="stable")]
    order = np.random.default_rng(0).permutation(len(y))
    train, val = order[:1400], order[1400:]
    return x[train], y[train], x[val], y[val]


def regression_epochs(lr: float, features: int, epochs: int = MAX_EPOCHS,
                      seed: int | None = None) -> list[dict[str, float]]:
    """Per epoch, {"val_rmse", "train_mse"}: 20 gradient-descent steps an epoch on the
    `features` most varying pixels, from zero weights (or random ones, for `seed`)."""
    xt, yt, xv, yv = _pixels()
    xt, xv = xt[:, :features], xv[:, :features]
    w = np.zeros(features) if seed is None else np.random.default_rng(seed).normal(0, 1, features)
    b, out = 4.5, []
    for _ in range(epochs):
        for _ in range(20):
            err = xt @ w + b - yt
            w = w - lr * xt.T @ err / len(yt)
            b -= lr * float(err.mean())
        out.append({"val_rmse": float(np.sqrt(np.mean((xv @ w + b - yv) ** 2))),
                    "train_mse": float(np.mean((xt @ w + b - yt) ** 2))})
    return out


def configs(n: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    low, high = SPACE["lr"]["low"], SPACE["lr"]["high"]
    return [{"lr": float(10 ** rng.uniform(np.log10(low), np.log10(high))),
             "features": int(rng.integers(2, 65))} for _ in range(n)]


def records(n: int = 24, seed: int = 0) -> list[res.TrialRecord]:
    """`n` finished trials: those over MAX_PARAMS infeasible at their start, the
    others trained MAX_EPOCHS epochs, reporting their costs with every epoch."""
    out = []
    for i, config in enumerate(configs(n, seed)):
        record = res.TrialRecord(f"d{i:02d}", config, started=1000.0 + i)
        params = config["features"] + 1
        if params > MAX_PARAMS:
            record.mark_infeasible({res.INFEASIBLE_KEY: True, "params": params,
                                    "node_id": "node-a"})
        for epoch, metrics in enumerate(
                [] if record.infeasible else regression_epochs(**config), start=1):
            record.add_epoch({**metrics, "epoch": epoch, "node_id": "node-a", "params": params,
                              "latency_ms": LATENCY_MS_PER_FEATURE * config["features"],
                              "train_s": 0.01 * config["features"], "peak_mem_mb": 1.0})
            record.epochs[epoch]["ended_at"] = 1000.0 + i + epoch
        record.ended, record.status = 1000.0 + i + MAX_EPOCHS, "TERMINATED"
        out.append(record)
    return out


def write_run(path: Path, trials: list[res.TrialRecord], *,
              objectives: tuple[tuple[str, str], ...] = OBJECTIVES,
              constraints: dict[str, float] | None = None) -> str:
    """A run directory as pipelines.run writes it for the digits sweep."""
    constraints = CONSTRAINTS if constraints is None else constraints
    path.mkdir(parents=True)
    where = resolve(str(path))
    (metric, mode), *_ = objectives
    res.write_parquet(res.trials_frame(trials, metric=metric, mode=mode, max_epochs=MAX_EPOCHS,
                                       now=3000.0, objectives=objectives,
                                       constraints=constraints), where / "trials.parquet")
    res.write_parquet(res.epochs_frame(trials, metrics=(metric,)), where / "epochs.parquet")
    (path / "run.json").write_text(json.dumps({
        "sweep": "digits_features", "task": "function", "algorithm": "optuna",
        "scheduler": "none", "metric": metric, "mode": mode,
        "objectives": [list(o) for o in objectives], "constraints": constraints,
        "space": SPACE, "status": "finished", "budget": {"max_epochs": MAX_EPOCHS}}))
    return str(path)


def write_confirm(run_dir: str, top: pd.DataFrame, seeds: int = 3) -> pd.DataFrame:
    """confirm.parquet as --confirm writes it: each of the `top` trials' configuration
    retrained from random weights with `seeds` fresh seeds, its best val_rmse each."""
    rows = []
    for rank, (_, trial) in enumerate(top.iterrows(), start=1):
        config: dict[str, Any] = {"lr": float(trial["config/lr"]),
                                  "features": int(trial["config/features"])}
        for seed in range(seeds):
            scores = [e["val_rmse"] for e in regression_epochs(**config, seed=100 + seed)]
            rows.append({"config_rank": rank, "trial_id": trial["trial_id"], "seed": 100 + seed,
                         "score": min(scores), "epochs": MAX_EPOCHS,
                         "retrain_id": f"c{rank}s{seed}",
                         **{res.CONFIG_PREFIX + k: v for k, v in config.items()}})
    frame = pd.DataFrame(rows).astype({"trial_id": "string", "retrain_id": "string"})
    res.write_parquet(frame, resolve(run_dir) / "confirm.parquet")
    return frame
