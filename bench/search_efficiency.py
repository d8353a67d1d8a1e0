"""Search efficiency on CIFAR-10: best validation accuracy against cumulative
training epochs for random search without early stopping, random + ASHA,
Optuna TPE + ASHA and HyperOpt + ASHA, over several seeds.

    python -m bench.search_efficiency [--seeds 0 1 2] [--train-size 5000] [--num-samples 12]

Every method runs `cifar_sweep --quick` (simple_cnn, up to 8 epochs per trial)
with the same number of trials and seed. Reported per method (mean over
seeds): its final best val_acc, the epochs it trained, and the epochs it took
to first reach its final best, also as a share of the full-budget random
search's epochs (ASHA's claim: near the cost of training one model, here
max_epochs / that budget).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile

import pandas as pd

from pipelines.analysis.curves import best_so_far
from pipelines.analysis.runs import load_run
from pipelines.tuning.ray_session import start_ray
from pipelines.tuning.run_plan import RunOptions
from pipelines.tuning.runner import run

METHODS = {  # name -> (algo, scheduler)
    "random, no early stopping": ("random", "none"),
    "random + ASHA": ("random", "asha"),
    "optuna TPE + ASHA": ("optuna", "asha"),
    "hyperopt + ASHA": ("hyperopt", "asha"),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.search_efficiency",
                                description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--train-size", type=int, default=5_000)
    p.add_argument("--val-size", type=int, default=2_000)
    p.add_argument("--num-samples", type=int, default=12)
    p.add_argument("--data-dir")
    return p.parse_args(argv)


def one(args: argparse.Namespace, storage: str, seed: int, algo: str,
        scheduler: str) -> dict:
    with contextlib.redirect_stdout(io.StringIO()):
        run_dir = run(RunOptions(sweep="cifar_sweep", quick=True, algo=algo,
                                 scheduler=scheduler, num_samples=args.num_samples,
                                 train_size=args.train_size, val_size=args.val_size,
                                 seed=seed, storage=storage, data_dir=args.data_dir))
    r = load_run(run_dir.uri)
    curve = best_so_far(r.trials, r.epochs, r.metric, r.mode)
    final = curve["best_val_acc"].iloc[-1]
    first = int(curve.loc[curve["best_val_acc"] == final, "epochs"].iloc[0])
    return {"best_val_acc": final, "epochs": len(r.epochs), "epochs_to_best": first,
            "max_epochs": r.meta["budget"]["max_epochs"]}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    start_ray()
    rows = []
    with tempfile.TemporaryDirectory() as storage:
        for seed in args.seeds:
            for name, (algo, scheduler) in METHODS.items():
                rows.append({"method": name, "seed": seed,
                             **one(args, storage, seed, algo, scheduler)})
                print(f"seed {seed} {name}: {rows[-1]}", flush=True)
    frame = pd.DataFrame(rows)
    full = frame[frame["method"] == "random, no early stopping"].set_index("seed")["epochs"]
    frame["share_of_full_budget"] = frame["epochs_to_best"] / frame["seed"].map(full)
    summary = frame.groupby("method", sort=False)[
        ["best_val_acc", "epochs", "epochs_to_best", "share_of_full_budget"]].mean()
    print(f"\nmeans over seeds {args.seeds} ({args.num_samples} trials each, "
          f"{args.train_size} training images):")
    print(summary.to_string(float_format=lambda v: f"{v:.3f}"))
    one_model = frame["max_epochs"].iloc[0] / full.mean()
    print(f"training one model to the end is {one_model:.3f} of the full budget")


if __name__ == "__main__":
    main()
