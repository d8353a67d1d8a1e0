"""Several trials per GPU: the throughput of 1, 2, 4 and 8 concurrent small
trials on one GPU, through the pipeline with fractional --gpus-per-trial.

    python -m bench.gpu_concurrency [--concurrency 1 2 4 8] [--train-size 20000] [--epochs 4]

Each setting runs 2 x N trials of cifar_sweep's quick model (random search,
no early stopping, all epochs run) with --gpus-per-trial 1/N and
--max-concurrent N. Aggregate images/s is every trained image divided by the
span from the first epoch's start to the last epoch's end, so Ray's start-up
is not counted. Needs a CUDA GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import tempfile

from pipelines.analysis.runs import load_run
from pipelines.records.storage import Location
from pipelines.tuning.ray_session import start_ray
from pipelines.tuning.run_plan import RunOptions
from pipelines.tuning.runner import run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.gpu_concurrency",
                                description=__doc__.splitlines()[0])
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--train-size", type=int, default=20_000)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--data-dir")
    return p.parse_args(argv)


def aggregate_rate(run_dir: Location, train_size: int) -> float:
    epochs = load_run(run_dir.uri).epochs
    span = epochs["ended_at"].max() - (epochs["ended_at"] - epochs["epoch_s"]).min()
    return len(epochs) * train_size / span


def main(argv: list[str] | None = None) -> None:
    import torch

    args = parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("bench.gpu_concurrency needs a CUDA GPU; this machine has none")
    start_ray()
    cpus = max(1, (os.cpu_count() or 1) // max(args.concurrency))
    with tempfile.TemporaryDirectory() as storage:
        base = None
        for n in args.concurrency:
            with contextlib.redirect_stdout(io.StringIO()):
                run_dir = run(RunOptions(
                    sweep="cifar_sweep", quick=True, algo="random", scheduler="none",
                    num_samples=2 * n, max_concurrent=n, gpus_per_trial=1 / n,
                    cpus_per_trial=cpus, max_epochs=args.epochs, train_size=args.train_size,
                    storage=storage, data_dir=args.data_dir))
            rate = aggregate_rate(run_dir, args.train_size)
            base = base or rate
            print(f"{n} trial(s) per GPU: {rate:,.0f} images/s in total ({rate / base:.2f}x "
                  f"one trial alone)", flush=True)
    print(f"GPU: {torch.cuda.get_device_name(0)}")


if __name__ == "__main__":
    main()
