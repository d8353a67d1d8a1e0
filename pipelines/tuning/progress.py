"""Live progress on stderr: a line every few seconds and when trials end."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.experiment import Trial

from pipelines.tuning.recorder import ResultRecorder

PROGRESS_EVERY_S = 5.0
ENDED_EVERY_S = 1.0  # a line when a trial ends, but at most this often (a long sweep
# of short trials ends dozens a second)


def _last_error_line(trial: Trial) -> str:
    path: str | None = trial.error_file  # None until the trial wrote one
    try:
        text = Path(path).read_text() if path is not None else None
    except OSError:
        text = None
    if text is None:
        return "see its error.txt under the run's tune/ directory"
    lines = [line for line in text.splitlines() if line.strip()]
    return f"{lines[-1].strip()} (full traceback: {path})" if lines else str(path)


class ProgressPrinter(tune.Callback):
    """One line to stderr every few seconds and whenever a trial ends."""

    def __init__(self, recorder: ResultRecorder, *, metric: str, total: int) -> None:
        # No stream is stored: Tune pickles its callbacks with the experiment state.
        self.recorder, self.metric, self.total = recorder, metric, total
        self.start = time.time()
        self._last = 0.0

    def on_trial_result(self, iteration: int, trials: list[Trial], trial: Trial,
                        result: dict[str, Any], **info: Any) -> None:
        if time.time() - self._last >= PROGRESS_EVERY_S:
            self.print_line()

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial,
                          **info: Any) -> None:
        if time.time() - self._last >= ENDED_EVERY_S or \
                self.recorder.tally.finished == self.total:
            self.print_line()

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial,
                       **info: Any) -> None:
        print(f"trial {trial.trial_id} failed: {_last_error_line(trial)}", file=sys.stderr,
              flush=True)
        self.print_line()

    def print_line(self) -> None:
        self._last = time.time()
        tally = self.recorder.tally  # counts: O(1) however many trials have run
        line = (f"[{time.time() - self.start:6.0f}s] trials: {tally.finished}/{self.total} done "
                f"({tally.early_stopped} early-stopped, "
                f"{f'{tally.no_improvement} stopped improving, ' if tally.no_improvement else ''}"
                f"{tally.failed} failed/diverged"
                f"{f', {tally.infeasible} infeasible' if tally.infeasible else ''}), "
                f"{len(self.recorder.records)} running")
        if tally.best:
            line += f" | best {self.metric} {tally.best[0]:.4f} ({tally.best[1]})"
        print(line, file=sys.stderr, flush=True)
