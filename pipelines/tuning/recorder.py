"""Driver-side Tune callbacks: record every result for the Parquet files, and
print live progress."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from ray import tune
from ray.tune.experiment import Trial

from pipelines.records.tables import TrialRecord

PERSIST_EVERY_S = 5.0  # results mid-trial; a trial's end is always written at once


class ResultRecorder(tune.Callback):
    """Keeps a TrialRecord per trial; `on_change` persists them (atomically).

    Its state is saved with Tune's experiment state, so a resumed run restores
    the records from the same snapshot as the trials: no epoch lost or doubled.
    """

    def __init__(self, on_change: Callable[[], None],
                 expand: Callable[[dict[str, Any]], dict[str, Any]] = dict) -> None:
        self.records: dict[str, TrialRecord] = {}
        self._on_change = on_change
        self._expand = expand  # Tune's config -> the trainer's (see search.sweep.with_carried)
        self._persisted = 0.0
        self.epoch_count = 0  # epochs recorded over all trials (a replaced one counts once)

    def _record(self, trial: Trial) -> TrialRecord:
        if trial.trial_id not in self.records:
            self.records[trial.trial_id] = TrialRecord(trial.trial_id,
                                                       self._expand(dict(trial.config)),
                                                       started=time.time())
        record = self.records[trial.trial_id]
        record.failures = trial.num_failures
        return record

    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial,
                       **info: Any) -> None:
        self._record(trial).status = "RUNNING"

    def on_trial_result(self, iteration: int, trials: list[Trial], trial: Trial,
                        result: dict[str, Any], **info: Any) -> None:
        if "epoch" in result:
            record = self._record(trial)
            self.epoch_count += int(result["epoch"]) not in record.epochs
            record.add_epoch(result)
        if time.time() - self._persisted >= PERSIST_EVERY_S:
            self._persist()

    def on_trial_recover(self, iteration: int, trials: list[Trial], trial: Trial,
                         **info: Any) -> None:
        self._record(trial).status = "PENDING"  # a worker or node died; Tune retries it

    def get_state(self) -> dict[str, Any]:
        return {"records": self.records}

    def set_state(self, state: dict[str, Any]) -> None:
        self.records = state["records"]
        self.epoch_count = sum(len(r.epochs) for r in self.records.values())

    def _persist(self) -> None:
        self._persisted = time.time()
        self._on_change()

    def end_running_trials(self) -> None:
        """The search was stopped as a whole (an epoch budget): trials still
        running end here, with the epochs they ran."""
        for record in self.records.values():
            if record.ended is None:
                record.ended, record.status = time.time(), "TERMINATED"

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial,
                          **info: Any) -> None:
        self._finish(trial, error=False)

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial,
                       **info: Any) -> None:
        self._finish(trial, error=True)

    def _finish(self, trial: Trial, *, error: bool) -> None:
        record = self._record(trial)
        record.ended, record.error = time.time(), error
        record.status = "ERROR" if error else "TERMINATED"
        if error:
            record.error_message = error_line(trial)
        self._persist()


ERROR_CHARS = 500  # of an error's message kept in trials.parquet (the whole one: error.txt)


def error_line(trial: Trial) -> str | None:
    """The last line of the trial's latest error, e.g. "NoMetricReported: ...": Tune
    writes each failure's traceback to the trial's error file."""
    try:
        text = Path(trial.error_file or "").read_text(errors="replace")
    except OSError:
        return None
    lines = [line.strip() for line in text.splitlines()
             if line.strip() and not line.startswith("Failure # ")]
    return lines[-1][:ERROR_CHARS] if lines else None
