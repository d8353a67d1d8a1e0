"""Live progress on stderr: a line every few seconds and whenever a trial ends."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.experiment import Trial

from pipelines.records.tables import TrialRecord
from pipelines.tuning.recorder import ResultRecorder

PROGRESS_EVERY_S = 5.0


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

    def __init__(self, recorder: ResultRecorder, *, metric: str, mode: str, total: int,
                 max_epochs: int) -> None:
        # No stream is stored: Tune pickles its callbacks with the experiment state.
        self.recorder, self.metric, self.mode = recorder, metric, mode
        self.total, self.max_epochs = total, max_epochs
        self.start = time.time()
        self._last = 0.0

    def on_trial_result(self, iteration: int, trials: list[Trial], trial: Trial,
                        result: dict[str, Any], **info: Any) -> None:
        if time.time() - self._last >= PROGRESS_EVERY_S:
            self.print_line()

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial,
                          **info: Any) -> None:
        self.print_line()

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial,
                       **info: Any) -> None:
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
