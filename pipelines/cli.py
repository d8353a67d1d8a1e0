"""What every command line here shares: an argument parser whose errors are one
line (a UsageError, not argparse's usage block) and the exit codes."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, NoReturn

from pipelines.errors import UsageError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # the shell's code for SIGINT
EXIT_BROKEN_PIPE = 141  # the shell's code for SIGPIPE: what `tool | head` leaves a tool


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not argparse's usage block
        raise UsageError(f"{message} (see --help)")


def add_sweep_arguments(p: argparse.ArgumentParser) -> None:
    """The sweep a tool works on (a name, a file or a module) and its --quick budget."""
    p.add_argument("sweep", help="the sweep: a name from `python -m pipelines.run --list`, a "
                                 "file such as my_sweep.py, or package.module[:ATTR]")
    p.add_argument("--quick", action="store_true", help="the sweep's CPU-sized budget")


def add_location_arguments(p: argparse.ArgumentParser) -> None:
    """Where a tool reads the data (--data-dir) and writes its results (--storage)."""
    from pipelines.records.storage import default_storage

    p.add_argument("--data-dir", help="data root (default: $RAYSWEEP_DATA_DIR or ./data)")
    p.add_argument("--storage", default=default_storage(), help="results root")


def exit_with(main: Callable[[], int]) -> NoReturn:
    """sys.exit(main()); a reader that stops early (`... | head`) ends the command
    quietly, as it ends any Unix tool, rather than with a BrokenPipeError traceback."""
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # Python flushes stdout again at exit, which would raise again: point it at nothing
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = EXIT_BROKEN_PIPE
    sys.exit(code)


def run_writing_at_end(parser: argparse.ArgumentParser,
                       command: Callable[[argparse.Namespace], int],
                       argv: list[str] | None) -> int:
    """`command(args)` of a CLI that creates its results directory only at the end
    (the LR range test, the batch size finder): a UsageError is one line and exit 2,
    Ctrl-C exit 130, and neither leaves anything behind."""
    try:
        return command(parser.parse_args(argv))
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # the results directory is created only at the end
        print("interrupted; nothing written", file=sys.stderr)
        return EXIT_INTERRUPTED
