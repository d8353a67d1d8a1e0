"""A warm-started search against a cold one, at the same number of trials.

    python -m bench.warm_start [--seeds 0 1 2] [--num-samples 12] [--algo optuna]

For each seed S: `cifar_sweep --quick --seed S` runs cold, `--num-samples` trials
(TPE + ASHA). Then the same run again, but `--warm-start` from the cold run of the
next seed in --seeds (an independent search of the same space, its trials and split
seeded otherwise), so the searcher starts knowing that run's finished trials. Both
runs of a seed share the searcher's seed, the split and the trials' seeds.

Reported per seed: each run's best validation accuracy, and its epochs to best:
the epochs its trials had trained, in all, when it first reached its final best
(its epochs ordered by when the driver received them; the source run's epochs
are not counted). Then the mean of each, and the seeds each method won. A run
that an earlier bench finished in the same --storage is read back, not run again.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.analysis import scored_epochs
from pipelines.records import read_parquet, read_run_json, resolve
from pipelines.tuning.ray_session import start_ray
from pipelines.tuning.run_plan import RunOptions
from pipelines.tuning.runner import run

SWEEP, METRIC = "cifar_sweep", "val_acc"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.warm_start",
                                description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                   help="at least two: each warm run starts from the next seed's cold run")
    p.add_argument("--num-samples", type=int, default=12, help="trials of every run")
    p.add_argument("--algo", default="optuna", help="a searcher that takes a warm start")
    p.add_argument("--data-dir", help="CIFAR-10 root (default: $RAYSWEEP_DATA_DIR)")
    p.add_argument("--storage", help="where the runs go (default: a temporary directory)")
    args = p.parse_args(argv)
    if len(set(args.seeds)) < 2:
        p.error("--seeds: give at least two distinct seeds")
    return args


def one_run(args: argparse.Namespace, storage: str, seed: int, name: str,
            warm_start: str | None = None) -> dict[str, Any]:
    """The run `name` in `storage`: run now, or read back where an earlier bench in
    the same --storage finished it (a bench stopped midway continues)."""
    run_dir = resolve(storage) / SWEEP / name
    meta = read_run_json(run_dir) if (run_dir / "run.json").is_file() else {}
    if meta.get("status") == "finished":
        wall = (datetime.fromisoformat(meta["end_time"])
                - datetime.fromisoformat(meta["start_time"])).total_seconds()
    else:
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # each run's leaderboard
            run_dir = run(RunOptions(sweep=SWEEP, quick=True, seed=seed, algo=args.algo,
                                     num_samples=args.num_samples, data_dir=args.data_dir,
                                     storage=storage, name=name, warm_start=warm_start))
        wall = time.perf_counter() - started
    epochs = read_parquet(run_dir / "epochs.parquet")
    best, to_best = epochs_to_best(epochs)
    return {"best_val_acc": best, "epochs_to_best": to_best, "epochs": len(epochs),
            "wall_s": wall, "run": run_dir.uri}


def epochs_to_best(epochs: pd.DataFrame) -> tuple[float, int]:
    """The run's best val_acc, and how many epochs its trials had trained in all
    (in the order the driver received them) when an epoch first reached it."""
    ordered = epochs.sort_values("ended_at", kind="stable").reset_index(drop=True)
    scored = scored_epochs(ordered, METRIC)
    best = float(scored[METRIC].max())
    first = int(scored.index[scored[METRIC] == best][0])
    return best, first + 1


def summarise(rows: list[dict[str, Any]]) -> str:
    """A markdown table, a row per seed and one of means; then the seeds won."""
    frame = pd.DataFrame(rows)
    lines = ["| seed | source run (seed) | best val_acc cold | best val_acc warm | "
             "epochs to best cold | epochs to best warm | epochs cold / warm |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['seed']} | seed {r['source_seed']} "
                     f"(best {r['source_best_val_acc']:.4f}) | {r['cold_best_val_acc']:.4f} "
                     f"| {r['warm_best_val_acc']:.4f} | {r['cold_epochs_to_best']} | "
                     f"{r['warm_epochs_to_best']} | {r['cold_epochs']} / {r['warm_epochs']} |")
    mean = frame.mean(numeric_only=True)
    lines.append(f"| mean | | {mean['cold_best_val_acc']:.4f} | {mean['warm_best_val_acc']:.4f} "
                 f"| {mean['cold_epochs_to_best']:.1f} | {mean['warm_epochs_to_best']:.1f} | "
                 f"{mean['cold_epochs']:.1f} / {mean['warm_epochs']:.1f} |")
    gaps = frame["warm_best_val_acc"] - frame["cold_best_val_acc"]
    wins = int((gaps > 0).sum()), int((gaps < 0).sum())
    spread = f" +- {statistics.stdev(gaps):.4f} sd" if len(gaps) > 1 else ""
    lines += ["", f"warm - cold best val_acc: {gaps.mean():+.4f}{spread}; seeds won: warm "
              f"{wins[0]}, cold {wins[1]}, ties {len(gaps) - sum(wins)}",
              f"wall: cold {frame['cold_wall_s'].sum():.0f} s, warm "
              f"{frame['warm_wall_s'].sum():.0f} s in all"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    start_ray()  # one Ray for every run
    with tempfile.TemporaryDirectory() as scratch:
        storage = args.storage or scratch
        cold: dict[int, dict[str, Any]] = {}
        rows = []
        for i, seed in enumerate(args.seeds):
            source = args.seeds[(i + 1) % len(args.seeds)]
            for s in (seed, source):  # cold 0, cold 1, warm 0, cold 2, warm 1, warm 2
                if s not in cold:
                    cold[s] = one_run(args, storage, s, f"cold-seed{s}")
                    print(f"seed {s} cold: best {cold[s]['best_val_acc']:.4f} after "
                          f"{cold[s]['epochs_to_best']} epochs", flush=True)
            warm = one_run(args, storage, seed, f"warm-seed{seed}",
                           warm_start=cold[source]["run"])
            print(f"seed {seed} warm (from seed {source}): best {warm['best_val_acc']:.4f} "
                  f"after {warm['epochs_to_best']} epochs", flush=True)
            rows.append({"seed": seed, "source_seed": source,
                         "source_best_val_acc": cold[source]["best_val_acc"],
                         **{f"cold_{k}": v for k, v in cold[seed].items()},
                         **{f"warm_{k}": v for k, v in warm.items()}})
        print("\n" + summarise(rows))
        if args.storage:
            pd.DataFrame(rows).to_csv(Path(args.storage) / "warm_start.csv", index=False)


if __name__ == "__main__":
    main()
