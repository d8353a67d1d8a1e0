"""Staged tuning against joint Bayesian search at an equal epoch budget.

    python -m bench.staged_vs_joint [--seeds 0 1 2] [--train-size N] [--max-epochs N]

For each seed: `cifar_staged --quick` runs its six stages (lr, batch size,
optimizer, schedule, width, regularisation); the number of epochs its trials
trained is the budget. Then the same space is searched jointly (`--joint
--algo optuna`, TPE + ASHA, as many trials as fit) until its trials have
trained that many epochs (`--epoch-budget`). Both use the same seed, so the
same training/validation split and trial seeds. Reported per seed: the best
validation accuracy each found, the epochs and trials each spent, and the
wall time; then the mean and the number of seeds each method won.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.records.tables import read_parquet
from pipelines.tuning.ray_session import start_ray
from pipelines.tuning.run_plan import RunOptions
from pipelines.tuning.runner import run

SWEEP = "cifar_staged"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.staged_vs_joint",
                                description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--train-size", type=int, help="default: the quick budget's")
    p.add_argument("--val-size", type=int, help="default: the quick budget's")
    p.add_argument("--max-epochs", type=int, help="default: the quick budget's")
    p.add_argument("--data-dir", help="CIFAR-10 root (default: $RAYSWEEP_DATA_DIR)")
    p.add_argument("--storage", help="where the runs go (default: a temporary directory)")
    return p.parse_args(argv)


def one_run(args: argparse.Namespace, storage: str, seed: int, **method: Any) -> dict:
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # each run's leaderboard
        run_dir = run(RunOptions(sweep=SWEEP, quick=True, seed=seed, storage=storage,
                                 train_size=args.train_size, val_size=args.val_size,
                                 max_epochs=args.max_epochs, data_dir=args.data_dir,
                                 **method))
    wall = time.perf_counter() - started
    trials = read_parquet(run_dir / "trials.parquet")
    return {"best_val_acc": trials["best_val_acc"].max(), "epochs": int(trials["epochs"].sum()),
            "trials": len(trials), "wall_s": wall, "run": run_dir.uri}


def compare(args: argparse.Namespace, storage: str, seed: int) -> dict:
    staged = one_run(args, storage, seed, name=f"staged-seed{seed}")
    joint = one_run(args, storage, seed, name=f"joint-seed{seed}", joint=True, algo="optuna",
                    num_samples=10_000, epoch_budget=staged["epochs"])
    return {"seed": seed, **{f"staged_{k}": v for k, v in staged.items()},
            **{f"joint_{k}": v for k, v in joint.items()}}


def summarise(rows: list[dict]) -> str:
    frame = pd.DataFrame(rows)
    shown = frame[["seed", "staged_best_val_acc", "joint_best_val_acc", "staged_epochs",
                   "joint_epochs", "staged_trials", "joint_trials", "staged_wall_s",
                   "joint_wall_s"]]
    gaps = frame["staged_best_val_acc"] - frame["joint_best_val_acc"]
    wins = int((gaps > 0).sum()), int((gaps < 0).sum())
    lines = [shown.to_string(index=False, float_format=lambda v: f"{v:.4f}"), "",
             f"mean best val_acc: staged {frame['staged_best_val_acc'].mean():.4f}, joint "
             f"{frame['joint_best_val_acc'].mean():.4f} (staged - joint: {gaps.mean():+.4f}"
             f"{f' +- {statistics.stdev(gaps):.4f} sd' if len(gaps) > 1 else ''})",
             f"seeds won: staged {wins[0]}, joint {wins[1]}, ties {len(gaps) - sum(wins)}",
             f"epochs: staged {frame['staged_epochs'].sum()}, joint "
             f"{frame['joint_epochs'].sum()} in total"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    start_ray()  # one Ray for every run
    with tempfile.TemporaryDirectory() as scratch:
        storage = args.storage or scratch
        rows = []
        for seed in args.seeds:
            rows.append(compare(args, storage, seed))
            print(f"seed {seed}: staged {rows[-1]['staged_best_val_acc']:.4f} in "
                  f"{rows[-1]['staged_epochs']} epochs, joint "
                  f"{rows[-1]['joint_best_val_acc']:.4f} in {rows[-1]['joint_epochs']}",
                  flush=True)
        print("\n" + summarise(rows))
        if args.storage:
            pd.DataFrame(rows).to_csv(Path(args.storage) / "staged_vs_joint.csv", index=False)


if __name__ == "__main__":
    main()
