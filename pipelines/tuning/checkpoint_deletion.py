"""Deleting a superseded checkpoint only once no saved experiment state names it.

Tune keeps a trial's best checkpoint and its latest (CheckpointConfig(num_to_keep=1))
and deletes the one a new checkpoint supersedes at once. The experiment state on
storage is saved every few seconds and still names that one as the latest, so a
driver killed in between resumes the trial from a checkpoint that is gone, and
Tune errors the trial ("Could not recover from checkpoint as it does not exist on
storage anymore"). DeferredCheckpointDeletion holds each such deletion back until
a snapshot that no longer names the checkpoint is on storage. Tune syncs each
snapshot to storage in the background and skips one while the last sync still
runs; so at each snapshot this callback first waits for the running sync (the
one of the snapshot before), which also makes sure this snapshot's sync is not
skipped. After that wait, the snapshot before is on storage whole, and what was
deferred before it is named by no snapshot left there."""

from __future__ import annotations

import contextlib
import sys
from collections import deque
from typing import TYPE_CHECKING, Any, Iterator

from ray import tune
from ray.train._internal import checkpoint_manager as tune_checkpoints
from ray.tune.experiment import Trial

if TYPE_CHECKING:
    import pyarrow.fs as pafs
    from ray.train._internal.syncer import Syncer

__all__ = ["SNAPSHOTS_BEFORE_DELETION", "DeferredCheckpointDeletion"]

SNAPSHOTS_BEFORE_DELETION = 2  # the snapshot after a deferral at which it is done
Deletion = tuple["pafs.FileSystem", str]  # a checkpoint directory on the run's storage


class DeferredCheckpointDeletion(tune.Callback):
    """While `deferring()`, Tune's deletions of superseded checkpoints wait here, and
    the SNAPSHOTS_BEFORE_DELETION-th snapshot of the experiment state after each
    (Tune calls `get_state` for it) does it, once the sync of the one before ended.
    The deferred ones travel in the snapshot, so a resumed run deletes them too; at
    most a few per running trial wait at any time, however long the run."""

    def __init__(self) -> None:
        # deletions deferred between snapshots, oldest first; the last still filling
        self._waiting: deque[list[Deletion]] = deque([[]])
        self.deleted = 0  # checkpoints this driver deleted
        # Tune's syncer of the experiment to storage: a trial's storage shares it
        self._syncer: Syncer | None = None

    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial,
                       **info: Any) -> None:
        if trial.storage is not None:
            self._syncer = trial.storage.syncer

    @contextlib.contextmanager
    def deferring(self) -> Iterator[None]:
        """Tune's checkpoint deletions go through `defer` for the block (a driver-side
        hook: Tune's checkpoint manager runs in the driver). At a normal exit, once
        Tune's final state is on storage, whatever waits is deleted."""
        original = tune_checkpoints._delete_fs_path
        tune_checkpoints._delete_fs_path = self.defer
        try:
            yield
        finally:
            tune_checkpoints._delete_fs_path = original
        if self._synced():  # Tune's final state reached storage (it only logs a failure)
            self.delete_all()

    def defer(self, fs: pafs.FileSystem, fs_path: str) -> None:
        self._waiting[-1].append((fs, fs_path))

    @property
    def waiting(self) -> int:
        return sum(len(batch) for batch in self._waiting)

    def get_state(self) -> dict[str, Any]:
        # Tune is saving a snapshot now. Once the last one is on storage whole, those
        # deferred before it are named by no snapshot that storage may still hold.
        if self._synced():
            while len(self._waiting) >= SNAPSHOTS_BEFORE_DELETION:
                self._delete(self._waiting.popleft())
        self._waiting.append([])
        return {"waiting": [d for batch in self._waiting for d in batch]}

    def set_state(self, state: dict[str, Any]) -> None:
        # this run resumes from the snapshot that held these: superseded before it,
        # they are named by no state that is left
        self._delete(state.get("waiting", []))

    def _synced(self) -> bool:
        """Wait for Tune's running sync of the experiment to storage, if any; False
        if it failed (its snapshot may not be on storage: the deletions wait on)."""
        if self._syncer is None:
            return True  # no trial started: nothing was deferred
        try:
            self._syncer.wait()
        except Exception:  # noqa: BLE001 - Tune warns of a failed sync itself
            return False
        return True

    def delete_all(self) -> None:
        while self._waiting:
            self._delete(self._waiting.popleft())
        self._waiting.append([])

    def _delete(self, deletions: list[Deletion]) -> None:
        for fs, path in deletions:
            try:
                fs.delete_dir(path)
            except FileNotFoundError:
                continue  # an earlier driver deleted it after its last snapshot
            except OSError as e:  # as Tune's own deletion: a warning, never the sweep's end
                print(f"warning: could not delete the superseded checkpoint {path} ({e}); "
                      f"it stays on storage", file=sys.stderr, flush=True)
                continue
            self.deleted += 1
