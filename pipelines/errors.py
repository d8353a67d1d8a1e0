"""The exceptions the CLI turns into a one-line message and an exit code."""

import shlex


class UsageError(Exception):
    """Bad input from the user: the message names the problem and the fix."""


class RunInterrupted(Exception):
    """The sweep was stopped (Ctrl-C) before every trial finished; what finished
    is in `run_dir`, and `--resume run_dir` finishes the rest."""

    def __init__(self, run_dir: object) -> None:
        # a pipelines.records.storage.Location, which is not named: storage imports this
        super().__init__(f"interrupted: the trials that finished are in {run_dir}; "
                         f"finish the run with --resume {shlex.quote(str(run_dir))}")
        self.run_dir = run_dir
