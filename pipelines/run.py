"""CLI: `python -m pipelines.run <sweep> [options]`. It parses arguments and
calls the library; bad input is one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import sys

from pipelines.cli import EXIT_INTERRUPTED, EXIT_USAGE, OneLineParser, exit_with
from pipelines.errors import RunInterrupted, UsageError


def build_parser() -> argparse.ArgumentParser:
    """The CLI's flags, in the order --help lists them."""
    p = OneLineParser(prog="python -m pipelines.run",
                      description="Run a hyperparameter sweep on Ray Tune; results land in "
                                  "<storage>/<sweep>/<run>/ as Parquet.")
    p.add_argument("sweep", nargs="?",
                   help="the sweep: a name from --list (search_spaces/), a file such as "
                        "my_sweep.py anywhere on disk, or package.module[:ATTR]; the module "
                        "defines SWEEP = Sweep(...)")
    p.add_argument("--list", action="store_true",
                   help="list the sweeps (or the one named) with where each is defined, "
                        "and exit")
    p.add_argument("--quick", action="store_true",
                   help="CPU-sized budget: a stratified subset, few trials, few epochs")
    _add_search_flags(p)
    _add_resource_flags(p)
    _add_storage_flags(p)
    _add_other_run_flags(p)
    return p


def _add_search_flags(p: argparse.ArgumentParser) -> None:
    """The search and its budget: algorithm, scheduler, trials, epochs, data sizes."""
    p.add_argument("--algo", help="grid | random | optuna | hyperopt (default: the sweep's)")
    p.add_argument("--scheduler", default="asha", help="asha | hyperband | median | none")
    p.add_argument("--num-samples", type=int, help="trials (grid: passes over the grid)")
    p.add_argument("--max-epochs", type=int, help="epochs per trial (ASHA's max_t)")
    p.add_argument("--grace-period", type=int, help="epochs before a trial may be stopped")
    p.add_argument("--reduction-factor", type=int, help="ASHA/HyperBand reduction factor")
    p.add_argument("--train-size", type=int, help="training images (stratified subset)")
    p.add_argument("--val-size", type=int, help="validation images held out of training")
    p.add_argument("--max-concurrent", type=int, help="trials running at once")
    p.add_argument("--epoch-budget", type=int,
                   help="stop the search once its trials have trained this many epochs in "
                        "total (set --num-samples high enough for it to bind)")
    p.add_argument("--joint", action="store_true",
                   help="a staged sweep's whole space searched at once, its stages ignored")
    p.add_argument("--lr-range", choices=["auto"],
                   help="auto: run an LR range test first and narrow the lr domain around "
                        "its suggestion (see the README)")
    p.add_argument("--max-params", type=int, metavar="N",
                   help="a constraint: a configuration whose model has more trainable "
                        "parameters is infeasible, found at its start without training")
    p.add_argument("--max-memory-mb", type=float, metavar="N",
                   help="a constraint: a configuration whose training step needs more "
                        "peak memory is infeasible, found at its start without training")
    p.add_argument("--warm-start", metavar="RUN_DIR",
                   help="start the search from an earlier run's finished trials (the same "
                        "sweep or one whose space shares parameters): the searcher is told "
                        "them as evaluated points; values outside this space's domains are "
                        "dropped (optuna, gp, nsga2, hyperopt)")
    p.add_argument("--batch-size", choices=["auto"],
                   help="auto: fix the batch size at the largest that fits (the batch size "
                        "finder, pipelines.bs_find) and scale lr linearly with it")


def _add_resource_flags(p: argparse.ArgumentParser) -> None:
    """What each trial gets, and which Ray runs them."""
    p.add_argument("--cpus-per-trial", type=float, default=1.0,
                   help="Ray CPUs and torch threads per trial")
    p.add_argument("--gpus-per-trial", type=float, default=0.0, help="fractions allowed")
    p.add_argument("--max-failures", type=int, default=2, help="retries of a failed trial")
    p.add_argument("--address", help="join a running Ray cluster: 'auto' or its head's "
                                     "host:port; default: RAY_ADDRESS if set, else an "
                                     "embedded local Ray")


def _add_storage_flags(p: argparse.ArgumentParser) -> None:
    """Where the data comes from and the results go."""
    from pipelines.data.cache import DATA_DIR_ENV, DEFAULT_DATA_DIR
    from pipelines.records.storage import DEFAULT_STORAGE, STORAGE_ENV, default_storage

    p.add_argument("--data-dir", help=f"data root (default: ${DATA_DIR_ENV} or "
                                      f"{DEFAULT_DATA_DIR})")
    p.add_argument("--storage", default=default_storage(),
                   help=f"results root: a path (shared, e.g. NFS, on a multi-node cluster) or "
                        f"a URI such as s3://bucket/path or gs://bucket/path (default: "
                        f"${STORAGE_ENV} or ./{DEFAULT_STORAGE})")
    p.add_argument("--name", help="run name (default: <timestamp>-<algo>)")
    p.add_argument("--log", action="append", metavar="TRACKER",
                   help="also log every trial to tensorboard | mlflow | wandb (repeatable), "
                        "through Ray Tune's logger callbacks; each needs its extra, e.g. "
                        "pip install -e \".[mlflow]\"")
    p.add_argument("--keep-checkpoints", type=int, default=3, metavar="K",
                   help="checkpoints of the best K finished trials kept; the rest are deleted "
                        "as trials finish (running and paused trials keep theirs)")


def _add_other_run_flags(p: argparse.ArgumentParser) -> None:
    """The seed, and the two commands on an existing run: --final and --resume."""
    p.add_argument("--seed", type=int, default=0, help="seeds the split, search and trials")
    p.add_argument("--final", metavar="RUN_DIR",
                   help="retrain the run's best configuration on every training image "
                        "(or --train-size of them, for --max-epochs) and score it once on "
                        "the test split; the score goes into the run directory")
    p.add_argument("--final-epochs", choices=("best", "budget"),
                   help="--final retrains for the winner's best epoch (default), where its "
                        "validation score peaked, or for its whole epoch budget; "
                        "--max-epochs N sets N")
    p.add_argument("--confirm", type=int, metavar="K",
                   help="after the search, retrain its top K configurations with fresh "
                        "seeds at the full epoch budget (confirm.parquet); with --run, on "
                        "a finished run")
    p.add_argument("--confirm-seeds", type=int, default=3, metavar="S",
                   help="fresh seeds per configuration that --confirm retrains")
    p.add_argument("--run", metavar="RUN_DIR",
                   help="the finished run that --confirm retrains the top of")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="finish a stopped or crashed run (<storage>/<sweep>/<run>): finished "
                        "and failed trials are kept, unfinished ones continue from their "
                        "last checkpoint")


# A resumed run is the run as it was started; only where it runs may change.
RESUME_MAY_CHANGE = {"sweep", "resume", "address", "data_dir"}
FINAL_MAY_CHANGE = {"sweep", "final", "data_dir", "train_size", "max_epochs", "final_epochs",
                    "cpus_per_trial"}
# --confirm K --run RUN_DIR retrains as the run was run; only where it runs may change.
CONFIRM_RUN_MAY_CHANGE = {"sweep", "run", "confirm", "confirm_seeds", "address", "data_dir"}


def _check_flags(parser: argparse.ArgumentParser, args: argparse.Namespace, mode: str,
                 allowed: set[str], why: str) -> None:
    changed = sorted(k for k, v in vars(args).items()
                     if k not in allowed and v != parser.get_default(k))
    if changed:
        flags = ", ".join("--" + k.replace("_", "-") for k in changed)
        raise UsageError(f"--{mode} {why}; drop {flags}")


def _final(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from pipelines.tuning.final_score import EPOCHS_FROM, FinalOptions, final

    threads = None if args.cpus_per_trial == parser.get_default("cpus_per_trial") else \
        max(1, int(args.cpus_per_trial))  # unset: torch's default, every core
    score = final(FinalOptions(args.final, sweep=args.sweep, data_dir=args.data_dir,
                               train_size=args.train_size, max_epochs=args.max_epochs,
                               epochs_from=args.final_epochs or "best", threads=threads))
    print(f"test_acc {score['test_acc']:.4f}, test_loss {score['test_loss']:.4f} "
          f"(trial {score['trial_id']}, {score['epochs']} epochs: "
          f"{EPOCHS_FROM[score['epochs_from']]}; on {score['train_size']} training images)")
    if score["evaluations"] > 1:
        print(f"note: this run's test split has now been scored {score['evaluations']} times "
              f"(all in final.parquet); choosing among them would be selecting on the test "
              f"split", file=sys.stderr)
    print(f"results: {args.final}")
    return 0


def _list_sweeps(named: str | None) -> None:
    """One line per sweep: its name, where it is defined, its description."""
    from pipelines.search.sweep_loader import find_sweep, load_sweep, sweep_names

    refs = [find_sweep(named)] if named else [find_sweep(name) for name in sweep_names()]
    for ref in refs:
        description = load_sweep(ref).description  # imported: its file is known now
        print(f"{ref.name:20s} {description}  [{ref.source_file()}]")


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.list:
            _list_sweeps(args.sweep)
            return 0
        if args.final and args.resume:
            raise UsageError("--final and --resume do not go together; --resume the run "
                             "first, then --final it")
        if args.final:
            _check_flags(parser, args, "final", FINAL_MAY_CHANGE,
                         "takes only --data-dir, --train-size, --max-epochs, --final-epochs "
                         "and --cpus-per-trial")
            return _final(parser, args)
        if args.final_epochs is not None:
            raise UsageError("--final-epochs is how many epochs --final retrains for; add "
                             "--final RUN_DIR, or drop --final-epochs")
        if args.confirm is None and args.confirm_seeds != parser.get_default("confirm_seeds"):
            raise UsageError("--confirm-seeds is the seeds per configuration that --confirm "
                             "retrains; add --confirm K, or drop --confirm-seeds")
        if args.resume:
            _check_flags(parser, args, "resume", RESUME_MAY_CHANGE,
                         "continues the run as it was started (only --address and "
                         "--data-dir may change)")
        elif args.run:
            _check_flags(parser, args, "run", CONFIRM_RUN_MAY_CHANGE,
                         "confirms the run as it was run (only --confirm, --confirm-seeds, "
                         "--address and --data-dir go with it)")
        elif not args.sweep:
            raise UsageError("name a sweep to run, e.g. `python -m pipelines.run cifar_sweep "
                             "--quick` or `python -m pipelines.run my_sweep.py`; --list shows "
                             "the project's own")
        from pipelines.tuning.run_plan import RunOptions
        from pipelines.tuning.runner import run

        options = RunOptions(**{**{k: v for k, v in vars(args).items()
                                   if k not in ("list", "final", "final_epochs")},
                                "log": tuple(args.log or ())})
        run_dir = run(options)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except RunInterrupted as e:
        print(e, file=sys.stderr)
        print(f"results: {e.run_dir}")
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("interrupted before the sweep started", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"results: {run_dir}")
    return 0


if __name__ == "__main__":
    exit_with(main)
