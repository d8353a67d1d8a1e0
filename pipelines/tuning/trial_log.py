"""Tune's own per-trial log (result.json), kept whole when a trial pauses.

Ray Tune's JsonLoggerCallback copies a trial's result.json back from storage each
time the trial starts with a checkpoint, so that a resumed run appends to it. It
does so on every start, a paused trial's too (HyperBand, PBT), and the copy on
storage is only as new as the last sync of the experiment, seconds old: the
reports since then were lost from the log (a trial's result.json held epochs 3
and 4 of 4). The driver's own copy is the newest one for as long as this driver
runs, so TrialJsonLogger takes the stored copy back only at a trial's first start
in this driver."""

from __future__ import annotations

from ray.tune.experiment import Trial
from ray.tune.logger import JsonLoggerCallback

__all__ = ["TrialJsonLogger"]


class TrialJsonLogger(JsonLoggerCallback):
    """JsonLoggerCallback that restores a trial's log from storage once per driver."""

    def __init__(self) -> None:
        super().__init__()
        # trials this driver started: ids only, kept (an errored trial that Tune
        # retries starts again, and its log here is still the newest)
        self._logging: set[str] = set()

    def _restore_from_remote(self, file_name: str, trial: Trial) -> None:
        if trial.trial_id in self._logging:
            return  # paused and started again: this driver's copy has every report
        super()._restore_from_remote(file_name, trial)

    def log_trial_start(self, trial: Trial) -> None:
        super().log_trial_start(trial)
        self._logging.add(trial.trial_id)
