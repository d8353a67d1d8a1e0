"""cifar_fast's recipe at full width on whatever device this machine has: train
on all 50,000 CIFAR-10 training images, then test once on the 10,000 test
images, with and without the test-time flip.

    python -m bench.fast_recipe [--lr 0.375] [--epochs 10] [--threads 2] [--data-dir DIR]

The configuration is cifar_fast's fixed values and full budget (airbench net of
width 64, batch 1024, SGD-Nesterov, OneCycle) at its first grid point (momentum
0.85, weight decay 5e-4, label smoothing 0.2) with `--lr` per 256 examples
(0.375: airbench94's effective rate of 1.5 at batch 1024). On a CPU it checks
the recipe's accuracy, not its speed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time

import torch

from pipelines.data import Cifar10
from pipelines.search.space import grid_points
from pipelines.training.classify import evaluate, train
from pipelines.training.config import TrainConfig
from pipelines.training.loop import Metrics, State, default_device
from pipelines.tuning.final_score import final_test_images, final_training_images
from search_spaces.cifar_fast import SWEEP


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.fast_recipe",
                                description=__doc__.splitlines()[0])
    p.add_argument("--lr", type=float, default=0.375, help="per 256 examples")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--data-dir", default=os.environ.get("RAYSWEEP_DATA_DIR", "../shared/data"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    first_grid_point = {name: grid_points(domain)[0] for name, domain in SWEEP.space.items()}
    full = SWEEP.budget(quick=False)
    cfg = TrainConfig.from_dict({**SWEEP.fixed, **full.fixed, **first_grid_point,
                                 "lr": args.lr, "epochs": args.epochs, "seed": 0})
    print(cfg, flush=True)
    data = final_training_images(Cifar10(), args.data_dir, None, cfg.seed)
    start = time.time()

    def report(metrics: Metrics, state: State) -> None:
        print(f"[{time.time() - start:7.0f}s] epoch {metrics['epoch']} train_loss "
              f"{metrics['train_loss']:.4f} {metrics['images_per_s']:.0f} images/s", flush=True)

    device = default_device()
    result = train(cfg, data, report=report, device=device)
    assert result.model is not None  # train() returns the model it trained
    train_s = time.time() - start
    test = final_test_images(Cifar10(), args.data_dir)
    scores = {"device": device.type, "lr": cfg.lr, "epochs": cfg.epochs,
              "train_s": round(train_s, 1)}
    for tta in (False, True):
        _, scores[f"test_acc_tta_{tta}"] = evaluate(result.model, test, device,
                                                    cfg=dataclasses.replace(cfg, tta=tta))
    print(json.dumps(scores), flush=True)


if __name__ == "__main__":
    main()
