"""The driver's Tune callback that records every result into the run's Parquet
files (through a ResultLog), at a cost per result that does not grow with the run."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ray import tune
from ray.tune.experiment import Trial

from pipelines.records.result_log import ResultLog
from pipelines.records.tables import INFEASIBLE_KEY, TrialRecord
from pipelines.search.searchers import suggest_seconds


@dataclass
class Tally:
    """What the progress line and the epoch budget need of every trial so far,
    kept as counts (a finished trial's rows are on disk, not in memory)."""

    finished: int = 0
    early_stopped: int = 0  # by the scheduler (ASHA)
    no_improvement: int = 0  # by their own patience
    failed: int = 0  # errors and divergences
    infeasible: int = 0  # broke a constraint
    epochs: int = 0  # recorded over all trials (a replaced one counts once)
    best: tuple[float, str] | None = None  # the best score so far, and its trial

    def count(self, reason: str | None) -> None:
        self.finished += 1
        self.early_stopped += reason == "early_stopped"
        self.no_improvement += reason == "no_improvement"
        self.failed += reason in ("error", "diverged")
        self.infeasible += reason == "infeasible"

    def score(self, value: float, trial_id: str, mode: str) -> None:
        if self.best is None or (value > self.best[0] if mode == "max" else value < self.best[0]):
            self.best = (value, trial_id)


class ResultRecorder(tune.Callback):
    """Keeps a TrialRecord per running trial; a trial that ends goes to the run's
    ResultLog and leaves memory. The results are written when Tune snapshots the
    experiment (every 2 s in a small run; see experiment.experiment_state_every),
    and at the end, so the files always show what a resume would start from: a
    finished trial in them is never run again.

    Its state is saved in that snapshot: the running trials, the counts, and how many
    finished rows the files held. A resumed run takes the finished rows back from the
    files, up to that count: no epoch lost or doubled. The state is O(running
    trials), however long the run.
    """

    def __init__(self, log: ResultLog, on_change: Callable[[], object] = lambda: None,
                 expand: Callable[[dict[str, Any]], dict[str, Any]] = dict,
                 on_end: Callable[[TrialRecord, str | None], object] | None = None) -> None:
        self.log = log
        self.records: dict[str, TrialRecord] = {}  # running (or paused, pending) trials
        self.tally = Tally()
        self._ended: list[TrialRecord] = []  # finished, not yet appended to the log
        self._on_change = on_change  # after each write of the results
        self._expand = expand  # Tune's config -> the trainer's (see search.sweep.with_carried)
        self._on_end = on_end  # each trial that ends, with its stop reason (a study's mirror)

    @property
    def epoch_count(self) -> int:
        return self.tally.epochs

    @property
    def trial_count(self) -> int:
        """Trials seen: finished and not."""
        return self.tally.finished + len(self.records)

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
        record = self._record(trial)
        record.status = "RUNNING"
        if record.suggest_s is None:
            record.suggest_s = suggest_seconds(trial.trial_id)

    def on_trial_result(self, iteration: int, trials: list[Trial], trial: Trial,
                        result: dict[str, Any], **info: Any) -> None:
        if result.get(INFEASIBLE_KEY):
            self._record(trial).mark_infeasible(result)
        elif "epoch" in result:
            record = self._record(trial)
            epoch = int(result["epoch"])
            self.tally.epochs += epoch not in record.epochs
            record.add_epoch(result)
            score = record.scores(self.log.metric).get(epoch)
            if score is not None:
                self.tally.score(score, trial.trial_id, self.log.mode)

    def on_trial_recover(self, iteration: int, trials: list[Trial], trial: Trial,
                         **info: Any) -> None:
        self._record(trial).status = "PENDING"  # a worker or node died; Tune retries it

    def get_state(self) -> dict[str, Any]:
        # Tune snapshots the experiment now: the files first, so the snapshot's count
        # of finished rows is what they hold. If the write fails, the unwritten
        # trials travel in the snapshot instead.
        self.persist(warn=True)
        return {"records": self.records, "ended": self._ended, "tally": self.tally,
                "written": self.log.written}

    def set_state(self, state: dict[str, Any]) -> None:
        if "tally" not in state:  # a run saved before results were kept incrementally
            self._restore_records(list(state["records"].values()))
            return
        self.log.restore(state["written"])
        self.records, self._ended, self.tally = state["records"], state["ended"], state["tally"]

    def _restore_records(self, records: list[TrialRecord]) -> None:
        self.records = {r.trial_id: r for r in records if r.ended is None}
        self._ended = [r for r in records if r.ended is not None]
        self.tally = Tally(epochs=sum(len(r.epochs) for r in records))
        for record in self._ended:
            self.tally.count(record.stop_reason(self.log.max_epochs, self.log.constraints))
        for record in records:
            for score in record.scores(self.log.metric).values():
                self.tally.score(score, record.trial_id, self.log.mode)

    def persist(self, *, warn: bool = False) -> None:
        """Write the results now; `warn`: a storage failure is a warning (the next
        write retries), not an error that would end the sweep."""
        try:
            self.log.write(list(self.records.values()), ended=self._ended)
        except OSError as e:
            if not warn:
                raise
            print(f"warning: could not write results to {self.log.run_dir} ({e}); retrying "
                  f"with the next result", file=sys.stderr, flush=True)
            return  # the ended trials stay here, and in the snapshot, until a write takes
        self._ended = []
        self._on_change()

    def end_running_trials(self) -> None:
        """The search was stopped as a whole (an epoch budget): trials still
        running end here, with the epochs they ran."""
        for trial_id in list(self.records):
            record = self.records[trial_id]
            record.ended, record.status = time.time(), "TERMINATED"
            self._end(record)

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
        self._end(record)

    def _end(self, record: TrialRecord) -> None:
        del self.records[record.trial_id]
        self._ended.append(record)
        reason = record.stop_reason(self.log.max_epochs, self.log.constraints)
        self.tally.count(reason)
        if self._on_end is not None:
            self._on_end(record, reason)


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
