"""CLI: `python -m pipelines.bs_find <sweep> [--quick] [--max-memory-mb N] ...`.

Finds the largest batch size of the sweep's model and data that fits in memory
(pipelines.batch_size): on a GPU until a training step runs out of memory (or
passes --max-memory-mb), on a CPU against the cap (--max-memory-mb, else the
sweep's peak_mem_mb constraint). Writes the probes as Parquet and the result as
JSON into a new directory `<storage>/<sweep>/<timestamp>-bs_find/`, beside the
LR range test's. Bad input is one line on stderr and exit code 2, with nothing
written.
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
    from pipelines.batch_size.finder import BatchSizeResult, Probe
    from pipelines.records.storage import Location

RUN_KIND = "bs_find"  # the run directory's suffix
STOPPED = {"memory": "one more example does not fit",  # BatchSizeResult.limit, in words
           "training split": "the whole training split fits", "max_batch": "--max-batch"}


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m pipelines.bs_find",
                      description="The largest batch size of a sweep's model and data that "
                                  "fits in memory (double, then bisect).")
    add_sweep_arguments(p)
    p.add_argument("--max-memory-mb", type=float, metavar="N",
                   help="the cap on a training step's peak memory (MB); needed on a CPU "
                        "unless the sweep has a peak_mem_mb constraint")
    p.add_argument("--max-batch", type=int, metavar="N",
                   help="try no batch larger than this (default: the training split's size)")
    add_location_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    return run_writing_at_end(build_parser(), find, argv)


def find(args: argparse.Namespace) -> int:
    from pipelines.batch_size.finder import check_buildable, find_batch_size, memory_cap
    from pipelines.records.storage import check_writable, resolve
    from pipelines.search import load_sweep, sweep_name
    from pipelines.training.loop import default_device
    from pipelines.training.tasks import task

    sweep = load_sweep(args.sweep)
    check_buildable(sweep, args.sweep)
    budget = sweep.budget(args.quick)
    if args.max_batch is not None and args.max_batch < 1:
        raise UsageError(f"--max-batch must be >= 1, got {args.max_batch}")
    device = default_device()
    cap = memory_cap(args.max_memory_mb, sweep, device)
    storage = resolve(args.storage)
    check_writable(storage)
    the_task = task(sweep.task)
    data = the_task.prepare_data(args.data_dir, sweep.data, budget.train_size,
                                 budget.val_size, 0)
    limit = f"under {cap:g} MB" if cap is not None else "until out of memory"
    print(f"batch size finder on {device}: {limit}", file=sys.stderr, flush=True)
    result = find_batch_size(sweep, budget, data, cap, device, max_batch=args.max_batch,
                             progress=_show)
    out = _write(result, sweep_name(args.sweep), storage)
    print(f"largest batch size that fits: {result.batch_size} ({result.model}, "
          f"{result.peak_mem_mb:,.1f} MB; {STOPPED[result.limit]})")
    print(f"results: {out}")
    return 0


def _show(probe: Probe) -> None:
    print(f"  {probe.line()}", file=sys.stderr, flush=True)


def _write(result: BatchSizeResult, sweep: str, storage: Location) -> Location:
    """The finder's files in a new directory; on a failed write, the directory is
    removed again (nothing half-written)."""
    from pipelines.batch_size.files import write_batch_size
    from pipelines.records.run_record import create_run_dir

    out = create_run_dir(storage, sweep, None, RUN_KIND)
    try:
        write_batch_size(out, result, sweep)
    except BaseException:
        out.fs.delete_dir(out.path)
        raise
    return out


if __name__ == "__main__":
    exit_with(main)
