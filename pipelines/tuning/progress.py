"""Live progress on stderr: a line every few seconds and whenever a trial ends."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ray import tune

from pipelines.records.tables import TrialRecord
from pipelines.tuning.recorder import ResultRecorder

PROGRESS_EVERY_S = 5.0


def _last_error_line(trial) -> str:
    path = getattr(trial, "error_file", None)
    try:
        lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
    except (OSError, TypeError):
        return "see its error.txt under the run's tune/ directory"
    return f"{lines[-1].strip()} (full traceback: {path})" if lines else str(path)


class ProgressPrinter(tune.Callback):
    """One line to stderr every few seconds and whenever a trial ends."""

    def __init__(self, recorder: ResultRecorder, *, metric: str, mode: str, total: int,
                 max_epochs: int):
        # No stream is stored: Tune pickles its callbacks with the experiment state.
        self.recorder, self.metric, self.mode = recorder, metric, mode
        self.total, self.max_epochs = total, max_epochs
        self.start = time.time()
        self._last = 0.0

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if time.time() - self._last >= PROGRESS_EVERY_S:
            self.print_line()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.print_line()

    def on_trial_error(self, iteration, trials, trial, **info):
        print(f"trial {trial.trial_id} failed: {_last_error_line(trial)}", file=sys.stderr,
              flush=True)
        self.print_line()

    def print_line(self) -> None:
        self._last = time.time()
        records = list(self.recorder.records.values())
        done = [r for r in records if r.ended is not None]
        reasons = [r.stop_reason(self.max_epochs) for r in done]
        stopped = sum(reason == "early_stopped" for reason in reasons)
        failed = sum(reason in ("error", "diverged") for reason in reasons)
        line = (f"[{time.time() - self.start:6.0f}s] trials: {len(done)}/{self.total} done "
                f"({stopped} early-stopped, {failed} failed/diverged), "
                f"{len(records) - len(done)} running")
        best = self._best(records)
        if best:
            line += f" | best {self.metric} {best[0]:.4f} ({best[1]})"
        print(line, file=sys.stderr, flush=True)

    def _best(self, records: list[TrialRecord]) -> tuple[float, str] | None:
        scores = [(score, r.trial_id) for r in records
                  for score in r.scores(self.metric).values()]
        if not scores:
            return None
        return max(scores) if self.mode == "max" else min(scores)
