"""Bounded disk: a finished trial's checkpoints are deleted (their directories
emptied) unless it is one of the best `keep` finished so far. Running and paused
trials keep theirs (Tune resumes them from it), so the run directory holds
checkpoints for the trials in flight plus `keep`, however many trials the sweep
has run."""

from __future__ import annotations

import heapq
import math
from typing import Any

import pyarrow.fs as pafs
from ray import tune
from ray.tune.experiment import Trial

CHECKPOINT_PREFIX = "checkpoint_"  # Tune's name for a trial's checkpoint directories
PRUNED_MARKER = "pruned"  # what a deleted checkpoint's directory holds instead


class CheckpointRetention(tune.Callback):
    """Keeps the checkpoints of the best `keep` finished trials by `metric`."""

    def __init__(self, keep: int, *, metric: str, mode: str) -> None:
        self.keep, self.metric, self.mode = keep, metric, mode
        # a min-heap: its first is the worst of those kept
        self._kept: list[tuple[float, str, str]] = []  # (goodness, trial_id, its directory)
        self.deleted = 0  # trials whose checkpoints this driver deleted

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial,
                          **info: Any) -> None:
        self._finished(trial)

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial,
                       **info: Any) -> None:
        self._finished(trial)

    def get_state(self) -> dict[str, Any]:
        return {"kept": self._kept}

    def set_state(self, state: dict[str, Any]) -> None:
        self._kept = state["kept"]

    def _finished(self, trial: Trial) -> None:
        storage = trial.storage
        if storage is None:  # never set up: no checkpoints
            return
        fs = storage.storage_filesystem  # the run's storage: local, NFS or an object store
        entry = (self._goodness(trial), trial.trial_id, storage.trial_fs_path)
        if len(self._kept) < self.keep:
            heapq.heappush(self._kept, entry)
            return
        if self._kept and entry > self._kept[0]:
            entry = heapq.heapreplace(self._kept, entry)  # the worst kept goes instead
        _delete_checkpoints(fs, entry[2])
        self.deleted += 1

    def _goodness(self, trial: Trial) -> float:
        """The trial's best score, larger is better; -inf if it has none."""
        best = trial.metric_analysis.get(self.metric, {}).get(self.mode)
        if not isinstance(best, (int, float)) or not math.isfinite(best):
            return -math.inf
        return float(best) if self.mode == "max" else -float(best)


def _delete_checkpoints(fs: pafs.FileSystem, trial_path: str) -> None:
    """Empty every checkpoint directory of a trial, leaving a marker in each: if the
    driver dies before Tune's next snapshot records the trial as finished, a resume
    restores it from this checkpoint, and Tune refuses one that does not exist. The
    trial finds no state in it, and runs again from the start (trainable.py)."""
    try:
        entries = fs.get_file_info(pafs.FileSelector(trial_path, allow_not_found=True))
    except OSError:
        return  # the trial's directory is gone already
    for entry in entries:
        if entry.type == pafs.FileType.Directory and entry.base_name.startswith(
                CHECKPOINT_PREFIX):
            fs.delete_dir_contents(entry.path)
            with fs.open_output_stream(f"{entry.path}/{PRUNED_MARKER}"):
                pass
