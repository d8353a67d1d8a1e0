"""Tune deletes a superseded checkpoint while the experiment state on storage still
names it; DeferredCheckpointDeletion holds the deletion back. The crash is injected
deterministically: the run's storage is copied as a killed driver would leave it,
at a snapshot right after Tune deleted (or deferred) a checkpoint, and the copy is
resumed. The trainable is a user's own function of no dataset (no CIFAR-10), defined
here, outside the repository's sweeps; the whole pipeline's killed-driver resumes on
scikit-learn's digits are in test_fault_tolerance.py and test_user_trainable.py."""

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import pytest
from ray import tune

from pipelines.tuning.checkpoint_deletion import (
    SNAPSHOTS_BEFORE_DELETION,
    DeferredCheckpointDeletion,
)

ITERATIONS = 8


def counting(config):
    """Counts to ITERATIONS, a checkpoint each step; a better score each step, so each
    checkpoint is the best and Tune deletes the one before."""
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            start = int(Path(d, "step").read_text())
    for step in range(start + 1, ITERATIONS + 1):
        time.sleep(0.2)
        with tempfile.TemporaryDirectory() as d:
            Path(d, "step").write_text(str(step))
            tune.report({"score": step, "step": step, "resumed_at": start},
                        checkpoint=tune.Checkpoint.from_directory(d))


class CrashCopy(tune.Callback):
    """At a snapshot once the trial has checkpointed 3 times, copies the storage as
    it stands: what a driver killed then leaves (the snapshot being saved now has not
    reached storage; the last one has). Tune forces a snapshot after each checkpoint
    (num_to_keep=1), so Tune alone has deleted the checkpoint the last one names."""

    def __init__(self, source: Path, copy: Path) -> None:
        self.source, self.copy, self.checkpoints = source, copy, 0
        self.syncer: Any = None

    def on_trial_start(self, iteration, trials, trial, **info):
        self.syncer = trial.storage.syncer  # Tune's syncer of the experiment

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        self.checkpoints += 1

    def get_state(self):
        if self.checkpoints >= 3 and not self.copy.exists():
            self.syncer.wait()  # storage holds the last snapshot whole, not half copied
            shutil.copytree(self.source, self.copy)
        return None


@pytest.mark.integration
@pytest.mark.parametrize("deferred", [False, True], ids=["tune_alone", "deferred"])
def test_a_driver_killed_after_a_checkpoint_superseded_another_resumes(tmp_path, local_ray,
                                                                        deferred):
    crash = CrashCopy(tmp_path / "storage" / "exp", tmp_path / "copy" / "exp")
    deletion = DeferredCheckpointDeletion()
    tuner = tune.Tuner(counting, run_config=tune.RunConfig(
        name="exp", storage_path=str(tmp_path / "storage"), verbose=0,
        callbacks=[deletion, crash] if deferred else [crash],
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1, checkpoint_score_attribute="score",
                                                checkpoint_score_order="max")))
    if deferred:
        with deletion.deferring():
            tuner.fit()
        # once the run ended, nothing waits: the best (= latest) checkpoint alone is left
        assert deletion.waiting == 0 and deletion.deleted == ITERATIONS - 1
        left = sorted(p.name for p in (tmp_path / "storage" / "exp").glob("*/checkpoint_*"))
        assert left == [f"checkpoint_{ITERATIONS - 1:06d}"]
    else:
        tuner.fit()
    assert crash.copy.exists(), "no snapshot after the third checkpoint"

    results = tune.Tuner.restore(str(crash.copy), counting).fit()
    if not deferred:  # the bug this guards against: Tune refuses the resume
        assert results.num_errors == 1
        assert "does not exist on storage anymore" in str(results[0].error)
        return
    assert results.num_errors == 0
    # it resumed from its checkpoint, not from the start, and counted to the end (the
    # last result itself: a run's TUNE_DISABLE_AUTO_CALLBACK_LOGGERS leaves no logs)
    last = results[0].metrics
    assert last is not None and last["resumed_at"] >= 2 and last["step"] == ITERATIONS


def test_a_deletion_waits_for_the_snapshots_after_it_and_travels_in_them(tmp_path):
    fs = pafs.LocalFileSystem()
    deletion = DeferredCheckpointDeletion()
    old, older = tmp_path / "checkpoint_000001", tmp_path / "checkpoint_000000"
    for path in (old, older):
        path.mkdir()
        (path / "state.pt").write_bytes(b"x")
    deletion.defer(fs, str(old))
    for _ in range(SNAPSHOTS_BEFORE_DELETION - 1):
        state = deletion.get_state()
        assert old.exists() and state["waiting"] == [(fs, str(old))]
    deletion.get_state()
    assert not old.exists() and deletion.deleted == 1 and deletion.waiting == 0

    # a resumed run deletes what its snapshot held waiting, and shrugs at what is gone
    deletion.defer(fs, str(older))
    resumed = DeferredCheckpointDeletion()
    resumed.set_state(deletion.get_state())
    assert not older.exists() and resumed.deleted == 1
    resumed.set_state({"waiting": [(fs, str(older))]})
    assert resumed.deleted == 1
