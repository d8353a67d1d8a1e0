"""cifar_fast's recipe at full width on whatever device this machine has: train
on all 50,000 CIFAR-10 training images, then test once on the 10,000 test
images, with and without the test-time views; and the effect of each of
airbench's pieces (trainer options) in one table.

    python -m bench.fast_recipe [--lr 0.375] [--epochs 10] [--precision bf16] [--threads 2]
    python -m bench.fast_recipe --pieces [NAME ...] --seeds 0 1 [--out bench/results/fast_recipe]

Without `--pieces` the configuration is cifar_fast's fixed values and full budget
(airbench94's recipe: airbench net of width 64, batch 1024, SGD-Nesterov and
every piece of AIRBENCH94) at its first grid point, with `--lr` per 256 examples
(0.375: airbench94's effective rate of 1.5 at batch 1024), under bf16 autocast
(`--precision`; airbench trains in fp16), in channels_last memory. On a CPU it
checks the recipe's accuracy, not its speed.

`--pieces` trains the port as it was before airbench's pieces ("base": PORT,
OneCycle, coupled weight decay 5e-4), the port with each piece of
search_spaces/cifar_fast.py's AIRBENCH94 alone, and with all of them ("all",
trained first: cifar_fast's recipe), for every `--seeds`
seed (the seed of the weights and of the training order; the same for every row), and
prints the table: test accuracy with the test-time views per seed, the mean, and the
mean's difference from base. Each finished run is a line of `--out`/runs.jsonl,
so a stopped bench resumes where it stopped; the default `--out` is kept in the
repository, so the next machine resumes it too. Each run is ~18 min on 2 CPU cores
(AMD EPYC with AVX-512 bf16; ~60 min in fp32).
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
from search_spaces.cifar_fast import AIRBENCH94, SWEEP

# the port before airbench's pieces (cifar_fast's values then; 87.7% in fp32, 88.3% with
# the flip): the table's base, which each row adds pieces to
PORT: dict[str, Any] = {
    "model": "airbench", "optimizer": "sgd", "nesterov": True, "schedule": "onecycle",
    "warmup_epochs": 2.0, "crop_padding": 2, "flip_prob": 0.5, "tta": True,
    "batch_size": 1024, "width": 64, "momentum": 0.85, "weight_decay": 5e-4,
    "label_smoothing": 0.2}
PIECES = AIRBENCH94
RUNS_FILE = "runs.jsonl"


def recipe(lr: float, epochs: int, seed: int, precision: str = "bf16",
           **overrides: Any) -> TrainConfig:
    """The port (PORT) with `overrides` (pieces), at `lr` per 256 examples."""
    return TrainConfig.from_dict({**PORT, "lr": lr, "epochs": epochs, "seed": seed,
                                  "precision": precision, **overrides})


def sweep_recipe(lr: float, epochs: int, seed: int, precision: str = "bf16") -> TrainConfig:
    """cifar_fast's full-budget configuration at its first grid point, `lr` apart."""
    first_grid_point = {name: grid_points(domain)[0] for name, domain in SWEEP.space.items()}
    return TrainConfig.from_dict({**SWEEP.fixed, **SWEEP.budget(quick=False).fixed,
                                  **first_grid_point, "lr": lr, "epochs": epochs,
                                  "seed": seed, "precision": precision})


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
                              "seed": cfg.seed, "precision": cfg.precision,
                              "train_s": round(train_s, 1)}
    # without any test-time view, and with the config's own (the flip; airbench's shifts)
    for tta in (False, True):
        views = cfg if tta else dataclasses.replace(cfg, tta=False, tta_shift=0)
        _, scores[f"test_acc_tta_{tta}"] = evaluate(result.model, test, device, cfg=views)
    return scores


def piece_table(runs: dict[tuple[str, int], dict[str, Any]], rows: list[str],
                seeds: list[int]) -> str:
    """The markdown table of test accuracy (with the test-time views) per row and seed."""
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
           precision: str, data_dir: str, only: list[str] | None = None) -> None:
    chosen = names or list(PIECES)
    rows: dict[str, dict[str, Any]] = {
        "base": {}, **{name: PIECES[name] for name in chosen},
        "all": {k: v for name in chosen for k, v in PIECES[name].items()}}
    out.mkdir(parents=True, exist_ok=True)
    log = out / RUNS_FILE
    # a finished run counts for a row with the same lr, epochs, precision and options (a
    # changed PIECES value, or an "all" of other pieces, runs again)
    runs = {(r["piece"], r["seed"]): r for r in map(json.loads, log.read_text().splitlines())
            if (r["lr"], r["epochs"], r.get("precision", "fp32")) == (lr, epochs, precision)
            and r["piece"] in rows
            and r.get("overrides") == rows[r["piece"]]} if log.exists() else {}
    for seed in seeds:  # "all" first: whether the recipe reaches its target shows soonest
        for row, overrides in sorted(rows.items(), key=lambda item: item[0] != "all"):
            if (row, seed) in runs or (only and row not in only):
                continue
            print(f"--- {row}, seed {seed} ---", flush=True)
            scores = {"piece": row, "overrides": overrides,
                      **run_once(recipe(lr, epochs, seed, precision, **overrides), data_dir)}
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
    p.add_argument("--precision", choices=("bf16", "fp32"), default="bf16",
                   help="the trainer's autocast")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--data-dir", default=os.environ.get("RAYSWEEP_DATA_DIR", "../shared/data"))
    p.add_argument("--pieces", nargs="*", metavar="NAME",
                   help=f"the per-piece table; NAMEs of {', '.join(PIECES)} (default: all)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--only", nargs="+", metavar="ROW",
                   help="with --pieces: train only these rows now (base, all or a piece); "
                        "the table shows every row")
    p.add_argument("--out", type=Path, default=Path("bench/results/fast_recipe"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if unknown := sorted(set(args.pieces or ()) - set(PIECES)):
        p.error(f"unknown piece(s) {', '.join(unknown)}; known: {', '.join(PIECES)}")
    if unknown := sorted(set(args.only or ()) - {"base", "all", *(args.pieces or PIECES)}):
        p.error(f"unknown row(s) {', '.join(unknown)} for --only; rows: base, all and the "
                f"pieces")
    if args.pieces is not None:
        pieces(args.pieces, args.seeds, args.out, args.lr, args.epochs, args.precision,
               args.data_dir, args.only)
        return
    print(json.dumps(run_once(sweep_recipe(args.lr, args.epochs, 0, args.precision),
                              args.data_dir)), flush=True)


if __name__ == "__main__":
    main()
