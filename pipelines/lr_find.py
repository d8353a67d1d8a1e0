"""CLI: `python -m pipelines.lr_find <sweep> [--model M] [--batch-size B] ...`.

Runs the learning-rate range test (pipelines.lr_range) on the sweep's model
and data (its --quick budget with --quick) and writes the curve as Parquet,
the plot as PNG and the suggestions as JSON into a new directory
`<storage>/<sweep>/<timestamp>-lr_range/`. Bad input is one line on stderr
and exit code 2; a model that no learning rate in the range trains is said so,
with exit code 1 and no number.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from pipelines.cli import (
    OneLineParser,
    add_location_arguments,
    add_sweep_arguments,
    exit_with,
    run_writing_at_end,
)
from pipelines.errors import UsageError

if TYPE_CHECKING:  # imported where used: `--help` and bad flags answer without torch
    from pipelines.data.images import ImageInfo
    from pipelines.lr_range.finder import RangeResult, RangeTest
    from pipelines.records.storage import Location
    from pipelines.search.sweep import Budget, Sweep
    from pipelines.training.config import TrainConfig

EXIT_NO_SUGGESTION = 1
DEFAULT_BATCH_SIZE = 128
DEFAULT_OPTIMIZER = "sgd"


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m pipelines.lr_find",
                      description="Learning-rate range test (Smith 2017) on a sweep's model "
                                  "and data.")
    add_sweep_arguments(p)
    p.add_argument("--model", help="model from the registry (default: the sweep's)")
    p.add_argument("--batch-size", type=int, help="examples per step (default: the sweep's "
                                                  "fixed value, else 128)")
    p.add_argument("--optimizer", help="sgd | adam | adamw (default: the sweep's, else sgd)")
    p.add_argument("--start-lr", type=float, default=1e-7, help="per 256 examples")
    p.add_argument("--end-lr", type=float, default=10.0, help="per 256 examples")
    p.add_argument("--num-iter", type=int, default=300, help="steps at most")
    p.add_argument("--train-size", type=int, help="training images (default: the budget's)")
    add_location_arguments(p)
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv: list[str] | None = None) -> int:
    return run_writing_at_end(build_parser(), find, argv)


def find(args: argparse.Namespace) -> int:
    from pipelines.data.images import classification_source, open_split, prepare
    from pipelines.lr_range.finder import range_test
    from pipelines.records.storage import check_writable, resolve
    from pipelines.search import load_sweep, sweep_name
    from pipelines.training.tasks import task

    sweep = load_sweep(args.sweep)
    if sweep.runs_function or not task(sweep.task).range_test:
        raise UsageError(f"the range test runs classification sweeps; {args.sweep} is a "
                         f"{sweep.task_name} sweep")
    budget = sweep.budget(args.quick)
    test = _range_test(args)
    cfg = _config(args, sweep, budget)
    train_size = budget.train_size if args.train_size is None else args.train_size
    if train_size is not None and train_size < 1:
        raise UsageError(f"--train-size must be >= 1, got {train_size}")
    storage = resolve(args.storage)
    check_writable(storage)
    source = classification_source(sweep.data)
    data = open_split(prepare(args.data_dir, source, train_size, budget.val_size, args.seed))
    _check_model(cfg, data.info)
    print(f"lr range test: {cfg.model}, {cfg.optimizer}, batch {cfg.batch_size}, lr "
          f"{test.start_lr:g} to {test.end_lr:g} over at most {test.num_iter} steps",
          file=sys.stderr, flush=True)
    result = range_test(cfg, data, test)  # its own model, seeded by --seed
    out = _write(result, cfg, test, sweep_name(args.sweep), storage)
    if result.suggestion is None:
        print(f"no learning rate to suggest: {result.why_no_suggestion}", file=sys.stderr)
        print(f"results: {out}")
        return EXIT_NO_SUGGESTION
    print(f"suggested lr (per 256 examples): {result.suggestion:.3g} (steepest descent); "
          f"valley rule: {result.valley:.3g}")
    print(f"results: {out}")
    return 0


def _range_test(args: argparse.Namespace) -> RangeTest:
    from pipelines.lr_range.finder import RangeTest

    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    try:
        return RangeTest(start_lr=args.start_lr, end_lr=args.end_lr, num_iter=args.num_iter)
    except ValueError as e:
        raise UsageError(str(e).replace("start_lr", "--start-lr").replace("end_lr", "--end-lr")
                         .replace("num_iter", "--num-iter")) from None


def _config(args: argparse.Namespace, sweep: Sweep, budget: Budget) -> TrainConfig:
    """The sweep's fixed values with the flags on top, validated."""
    from pipelines.training.config import TrainConfig

    values = {**sweep.fixed, **budget.fixed, "seed": args.seed}
    if args.model:
        values.pop("depth", None)  # the budget's depth belongs to the budget's model
        values["model"] = args.model
    values.setdefault("optimizer", DEFAULT_OPTIMIZER)
    values.setdefault("batch_size", DEFAULT_BATCH_SIZE)
    if args.optimizer:
        values["optimizer"] = args.optimizer
    if args.batch_size is not None:
        values["batch_size"] = args.batch_size
    try:
        return TrainConfig.from_dict(values)
    except (TypeError, ValueError, KeyError) as e:
        raise UsageError(str(e).strip("'\"")) from None


def _check_model(cfg: TrainConfig, info: ImageInfo) -> None:
    """Build the model once for the data: a bad combination (e.g. --model simple_cnn
    with the full budget's depth) is a UsageError here, not a traceback later."""
    import torch

    from pipelines.training.classify import build_classifier

    try:
        build_classifier(cfg, info, torch.device("cpu"))  # as the trials build it
    except (TypeError, ValueError, KeyError) as e:
        raise UsageError(str(e).strip("'\"")) from None


def _write(result: RangeResult, cfg: TrainConfig, test: RangeTest, sweep: str,
           storage: Location) -> Location:
    """The test's files in a new directory; on a failed write, the directory is
    removed again (nothing half-written)."""
    from pipelines.lr_range.files import write_range_test
    from pipelines.records.run_record import create_run_dir

    out = create_run_dir(storage, sweep, None, "lr_range")
    try:
        write_range_test(out, result, cfg, test, sweep)
    except BaseException:
        out.fs.delete_dir(out.path)
        raise
    return out


if __name__ == "__main__":
    exit_with(main)
