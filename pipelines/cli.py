"""What every command line here shares: an argument parser whose errors are one
line (a UsageError, not argparse's usage block) and the exit codes."""

from __future__ import annotations

import argparse

from pipelines.errors import UsageError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # the shell's code for SIGINT


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        raise UsageError(f"{message} (see --help)")
