"""Checkpoints of finished trials but the best K are emptied, on a real local
filesystem laid out as Tune lays out a run (trial dir / checkpoint_00000N / state.pt).
The end-to-end check, with a user's sweep file on digits and a killed driver that
resumes after deletions, is in tests/tuning/test_user_trainable.py."""

import math
import pickle
from types import SimpleNamespace

import pyarrow.fs as pafs
import pytest

from pipelines.tuning.checkpoint_retention import PRUNED_MARKER, CheckpointRetention
from pipelines.tuning.trainable import CHECKPOINT_FILE


def _trial(root, trial_id, best, metric="val_acc", mode="max"):
    for index in (1, 2):
        d = root / trial_id / f"checkpoint_{index:06d}"
        d.mkdir(parents=True)
        (d / CHECKPOINT_FILE).write_bytes(b"weights" * 100)
    storage = SimpleNamespace(storage_filesystem=pafs.LocalFileSystem(),
                              trial_fs_path=str(root / trial_id))
    return SimpleNamespace(trial_id=trial_id, storage=storage,
                           metric_analysis={metric: {mode: best}})


def _kept(root):
    return sorted(p.name for p in root.iterdir()
                  if any(p.glob(f"checkpoint_*/{CHECKPOINT_FILE}")))


@pytest.mark.parametrize("mode", ["max", "min"])
def test_only_the_best_k_finished_trials_keep_their_checkpoints(tmp_path, mode):
    scores = {"a": 0.5, "b": 0.9, "c": math.nan, "d": 0.7, "e": 0.1}
    retention = CheckpointRetention(2, metric="val_acc", mode=mode)
    for trial_id, score in scores.items():
        retention.on_trial_complete(0, [], _trial(tmp_path, trial_id, score, mode=mode))
    assert _kept(tmp_path) == (["b", "d"] if mode == "max" else ["a", "e"])
    assert retention.deleted == 3
    emptied = tmp_path / "c" / "checkpoint_000002"  # a trial without a score goes first
    assert [p.name for p in emptied.iterdir()] == [PRUNED_MARKER]


def test_a_running_trial_keeps_its_checkpoints_and_the_kept_survive_a_restore(tmp_path):
    retention = CheckpointRetention(1, metric="val_acc", mode="max")
    _trial(tmp_path, "running", 0.0)  # never completes here
    retention.on_trial_complete(0, [], _trial(tmp_path, "good", 0.8))
    restored = CheckpointRetention(1, metric="val_acc", mode="max")
    restored.set_state(pickle.loads(pickle.dumps(retention.get_state())))
    restored.on_trial_error(0, [], _trial(tmp_path, "failed", math.nan))
    restored.on_trial_complete(0, [], _trial(tmp_path, "better", 0.9))
    assert _kept(tmp_path) == ["better", "running"]


def test_keeping_none_empties_every_finished_trials_checkpoints(tmp_path):
    retention = CheckpointRetention(0, metric="val_acc", mode="max")
    retention.on_trial_complete(0, [], _trial(tmp_path, "a", 0.8))
    assert _kept(tmp_path) == []
