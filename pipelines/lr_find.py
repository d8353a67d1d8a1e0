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
import dataclasses
import sys

from pipelines.errors import UsageError

EXIT_USAGE = 2
EXIT_NO_SUGGESTION = 1


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise UsageError(f"{message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    from pipelines.storage import default_storage

    p = _Parser(prog="python -m pipelines.lr_find",
                description="Learning-rate range test (Smith 2017) on a sweep's model and data.")
    p.add_argument("sweep", help="sweep name: a module in search_spaces/")
    p.add_argument("--quick", action="store_true", help="the sweep's CPU-sized budget")
    p.add_argument("--model", help="model from the registry (default: the sweep's)")
    p.add_argument("--batch-size", type=int, default=128, help="examples per step")
    p.add_argument("--optimizer", default="sgd", help="sgd | adam | adamw")
    p.add_argument("--start-lr", type=float, default=1e-7, help="per 256 examples")
    p.add_argument("--end-lr", type=float, default=10.0, help="per 256 examples")
    p.add_argument("--num-iter", type=int, default=300, help="steps at most")
    p.add_argument("--train-size", type=int, help="training images (default: the budget's)")
    p.add_argument("--data-dir", help="data root (default: $RAYSWEEP_DATA_DIR or ./data)")
    p.add_argument("--storage", default=default_storage(), help="results root")
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return find(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE


def find(args: argparse.Namespace) -> int:
    from pipelines import results as res
    from pipelines.config import TrainConfig
    from pipelines.data import DataSpec, ensure_cache, open_split, resolve_data_dir
    from pipelines.lr_range import RangeTest, range_test
    from pipelines.plots import plot_lr_range
    from pipelines.run_record import create_run_dir
    from pipelines.storage import check_writable, resolve
    from pipelines.sweep import load_sweep

    sweep = load_sweep(args.sweep)
    budget = sweep.quick if args.quick else sweep.full
    test = _range_test(args, RangeTest)
    values = {**sweep.fixed, **budget.fixed, "optimizer": args.optimizer,
              "batch_size": args.batch_size, "seed": args.seed}
    if args.model:
        values["model"] = args.model
    try:
        cfg = TrainConfig.from_dict(values)
        cfg.validate()
    except (TypeError, ValueError) as e:
        raise UsageError(str(e)) from None
    train_size = args.train_size or budget.train_size
    storage = resolve(args.storage)
    check_writable(storage)
    cache, source = ensure_cache(resolve_data_dir(args.data_dir))
    data = open_split(DataSpec(cache, train_size, budget.val_size, args.seed, source))
    print(f"lr range test: {cfg.model}, {cfg.optimizer}, batch {cfg.batch_size}, lr "
          f"{test.start_lr:g} to {test.end_lr:g} over at most {test.num_iter} steps",
          file=sys.stderr, flush=True)
    result = range_test(cfg, data, test)
    out = create_run_dir(storage, args.sweep, None, "lr_range")  # after the test: no empty dir
    res.write_parquet(result.curve, out / "curve.parquet")
    title = f"{args.sweep}: {cfg.model}, {cfg.optimizer}, batch {cfg.batch_size}"
    plot_lr_range(result.curve, result.steepest, result.valley, title, str(out / "lr_range.png"))
    summary = {"sweep": args.sweep, "config": dataclasses.asdict(cfg),
               "test": dataclasses.asdict(test), "steps": len(result.curve),
               "stopped": result.stopped, "steepest": result.steepest,
               "valley": result.valley, "suggestion": result.suggestion,
               "why_no_suggestion": result.why_no_suggestion}
    res.write_json(summary, out / "lr_range.json")
    if result.suggestion is None:
        print(f"no learning rate to suggest: {result.why_no_suggestion}", file=sys.stderr)
        print(f"results: {out}")
        return EXIT_NO_SUGGESTION
    print(f"suggested lr (per 256 examples): {result.suggestion:.3g} (steepest descent); "
          f"valley rule: {result.valley:.3g}")
    print(f"results: {out}")
    return 0


def _range_test(args, range_test_class):
    if not 0 < args.start_lr < args.end_lr:
        raise UsageError(f"need 0 < --start-lr < --end-lr, got {args.start_lr:g} and "
                         f"{args.end_lr:g}")
    if args.num_iter < 20:
        raise UsageError(f"--num-iter must be >= 20, got {args.num_iter}")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
    return range_test_class(start_lr=args.start_lr, end_lr=args.end_lr, num_iter=args.num_iter)


if __name__ == "__main__":
    sys.exit(main())
