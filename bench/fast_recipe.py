"""cifar_fast's recipe at full width on whatever device this machine has: train
on all 50,000 CIFAR-10 training images, then test once on the 10,000 test
images, with and without the test-time flip; and the effect of each of
airbench's pieces (trainer options) in one table.

    python -m bench.fast_recipe [--lr 0.375] [--epochs 10] [--threads 2] [--data-dir DIR]
    python -m bench.fast_recipe --pieces [NAME ...] --seeds 0 1 --out results/fast_recipe

The configuration is cifar_fast's fixed values and full budget (airbench net of
width 64, batch 1024, SGD-Nesterov, OneCycle) at its first grid point (momentum
0.85, weight decay 5e-4, label smoothing 0.2) with `--lr` per 256 examples
(0.375: airbench94's effective rate of 1.5 at batch 1024). On a CPU it checks
the recipe's accuracy, not its speed.

`--pieces` trains the plain recipe ("base"), the recipe with each piece of
PIECES alone, and with all of them ("all", trained first), for every `--seeds`
seed (the seed of the weights and of the training order; the same for every row), and
prints the table: test accuracy with the flip per seed, the mean, and the
mean's difference from base. Each finished run is a line of `--out`/runs.jsonl,
so a stopped bench resumes where it stopped. Each run is ~40 min on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from pipelines.data import Cifar10
from pipelines.search.space import grid_points
from pipelines.training.classify import evaluate, train
from pipelines.training.config import TrainConfig
from pipelines.training.loop import Metrics, State, default_device
from pipelines.tuning.final_score import final_test_images, final_training_images
from search_spaces.cifar_fast import SWEEP

# airbench94's pieces as this trainer's options. Its decay of 0.0153 per 1,024 examples
# is divided there by 1 + 1 / (1 - momentum) (its "kilostep" scale, 7.67 at momentum
# 0.85) before torch's SGD compounds it by the momentum, as ours does: 0.002 here
PIECES: dict[str, dict[str, Any]] = {
    "whiten": {"whiten": True},
    "lookahead": {"lookahead_k": 5, "lookahead_alpha": 0.5},
    "bn_bias_lr": {"bn_bias_lr": 64.0, "freeze_bn_weights": True},
    "bn_momentum": {"bn_momentum": 0.4},
    "decoupled_wd": {"weight_decay": 0.0, "decoupled_wd": 0.002},
}
RUNS_FILE = "runs.jsonl"


def recipe(lr: float, epochs: int, seed: int, **overrides: Any) -> TrainConfig:
    first_grid_point = {name: grid_points(domain)[0] for name, domain in SWEEP.space.items()}
    full = SWEEP.budget(quick=False)
    return TrainConfig.from_dict({**SWEEP.fixed, **full.fixed, **first_grid_point,
                                  "lr": lr, "epochs": epochs, "seed": seed, **overrides})


def run_once(cfg: TrainConfig, data_dir: str) -> dict[str, Any]:
    """Train `cfg` on all the training images, test once; the scores."""
    print(cfg, flush=True)
    data = final_training_images(Cifar10(), data_dir, None, cfg.seed)
    start = time.time()

    def report(metrics: Metrics, state: State) -> None:
        print(f"[{time.time() - start:7.0f}s] epoch {metrics['epoch']} train_loss "
              f"{metrics['train_loss']:.4f} {metrics['images_per_s']:.0f} images/s", flush=True)

    device = default_device()
    result = train(cfg, data, report=report, device=device)
    assert result.model is not None  # train() returns the model it trained
    train_s = time.time() - start
    test = final_test_images(Cifar10(), data_dir)
    scores: dict[str, Any] = {"device": device.type, "lr": cfg.lr, "epochs": cfg.epochs,
                              "seed": cfg.seed, "train_s": round(train_s, 1)}
    for tta in (False, True):
        _, scores[f"test_acc_tta_{tta}"] = evaluate(result.model, test, device,
                                                    cfg=dataclasses.replace(cfg, tta=tta))
    return scores


def piece_table(runs: dict[tuple[str, int], dict[str, Any]], rows: list[str],
                seeds: list[int]) -> str:
    """The markdown table of test accuracy (with the flip) per row and seed."""
    def mean(row: str) -> float | None:
        accs = [runs[row, s]["test_acc_tta_True"] for s in seeds if (row, s) in runs]
        return statistics.mean(accs) if len(accs) == len(seeds) else None

    base = mean("base")
    lines = [f"| piece | {' | '.join(f'seed {s}' for s in seeds)} | mean | vs base |",
             "|" + " --- |" * (len(seeds) + 3)]
    for row in rows:
        cells = [f"{runs[row, s]['test_acc_tta_True']:.4f}" if (row, s) in runs else "-"
                 for s in seeds]
        m = mean(row)
        delta = f"{m - base:+.4f}" if m is not None and base is not None and row != "base" \
            else ""
        lines.append(f"| {row} | {' | '.join(cells)} | "
                     f"{'-' if m is None else f'{m:.4f}'} | {delta} |")
    return "\n".join(lines)


def pieces(names: list[str], seeds: list[int], out: Path, lr: float, epochs: int,
           data_dir: str) -> None:
    chosen = names or list(PIECES)
    rows: dict[str, dict[str, Any]] = {
        "base": {}, **{name: PIECES[name] for name in chosen},
        "all": {k: v for name in chosen for k, v in PIECES[name].items()}}
    out.mkdir(parents=True, exist_ok=True)
    log = out / RUNS_FILE
    # a finished run counts for a row with the same lr, epochs and options (a changed
    # PIECES value, or an "all" of other pieces, runs again)
    runs = {(r["piece"], r["seed"]): r for r in map(json.loads, log.read_text().splitlines())
            if (r["lr"], r["epochs"]) == (lr, epochs) and r["piece"] in rows
            and r.get("overrides") == rows[r["piece"]]} if log.exists() else {}
    for seed in seeds:  # "all" first: whether the recipe reaches its target shows soonest
        for row, overrides in sorted(rows.items(), key=lambda item: item[0] != "all"):
            if (row, seed) in runs:
                continue
            print(f"--- {row}, seed {seed} ---", flush=True)
            scores = {"piece": row, "overrides": overrides,
                      **run_once(recipe(lr, epochs, seed, **overrides), data_dir)}
            with log.open("a") as f:  # one whole line per finished run
                f.write(json.dumps(scores) + "\n")
            runs[row, seed] = scores
            print(piece_table(runs, list(rows), seeds), flush=True)
    print(piece_table(runs, list(rows), seeds), flush=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.fast_recipe",
                                description=__doc__.splitlines()[0])
    p.add_argument("--lr", type=float, default=0.375, help="per 256 examples")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--data-dir", default=os.environ.get("RAYSWEEP_DATA_DIR", "../shared/data"))
    p.add_argument("--pieces", nargs="*", metavar="NAME",
                   help=f"the per-piece table; NAMEs of {', '.join(PIECES)} (default: all)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--out", type=Path, default=Path("results/fast_recipe"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if unknown := sorted(set(args.pieces or ()) - set(PIECES)):
        p.error(f"unknown piece(s) {', '.join(unknown)}; known: {', '.join(PIECES)}")
    if args.pieces is not None:
        pieces(args.pieces, args.seeds, args.out, args.lr, args.epochs, args.data_dir)
        return
    print(json.dumps(run_once(recipe(args.lr, args.epochs, 0), args.data_dir)), flush=True)


if __name__ == "__main__":
    main()
