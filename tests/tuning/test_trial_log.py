"""Tune's per-trial result.json through a pause: a real Tune Trial of a user's own
function (no dataset, no CIFAR-10), its log written by the driver's logger, and the
copy on storage seconds old, as Tune's background sync leaves it. HyperBand's
pauses of a user's loop on scikit-learn's digits: test_user_trainable.py."""

import json
from pathlib import Path

import pytest
from ray import tune
from ray.train._internal.session import _TrainingResult
from ray.train._internal.storage import StorageContext
from ray.tune.experiment import Trial
from ray.tune.logger import JsonLoggerCallback
from ray.tune.registry import register_trainable

from pipelines.tuning.trial_log import TrialJsonLogger


def local_log(trial: Trial) -> Path:
    """The driver's copy of the trial's result.json."""
    assert trial.local_path is not None
    return Path(trial.local_path, "result.json")


def logged_epochs(trial: Trial) -> list[int]:
    text = local_log(trial).read_text()
    return [json.loads(line)["epoch"] for line in text.splitlines()]


def started_trial(storage: Path, logger: JsonLoggerCallback, epochs: range) -> Trial:
    register_trainable("users_loop", lambda config: None)
    trial = Trial("users_loop", config={}, trial_id="t0",
                  storage=StorageContext(storage_path=str(storage), experiment_dir_name="exp"))
    trial.init_local_path()
    logger.log_trial_start(trial)
    for epoch in epochs:
        logger.log_trial_result(epoch, trial, {"epoch": epoch})
    return trial


def pause_with_a_stale_stored_log(trial: Trial, stored: str) -> None:
    """The trial pauses with a checkpoint; storage's result.json is an older sync."""
    assert trial.storage is not None
    trial_dir = Path(trial.storage.trial_fs_path)
    (trial_dir / "checkpoint_000001").mkdir(parents=True)
    (trial_dir / "result.json").write_text(stored)
    trial.on_checkpoint(_TrainingResult(
        checkpoint=tune.Checkpoint.from_directory(str(trial_dir / "checkpoint_000001")),
        metrics={}))


@pytest.mark.parametrize("logger_class", [JsonLoggerCallback, TrialJsonLogger])
def test_a_paused_trial_keeps_every_report_in_its_log(tmp_path, local_ray, logger_class):
    logger = logger_class()
    trial = started_trial(tmp_path, logger, range(1, 3))
    pause_with_a_stale_stored_log(trial, "")  # synced before the first report
    logger.log_trial_start(trial)  # HyperBand starts it again
    logger.log_trial_result(3, trial, {"epoch": 3})
    if logger_class is JsonLoggerCallback:  # Tune's own: the bug TrialJsonLogger fixes
        assert logged_epochs(trial) == [3]
    else:
        assert logged_epochs(trial) == [1, 2, 3]


def test_a_resumed_driver_takes_the_stored_log_back(tmp_path, local_ray):
    trial = started_trial(tmp_path, TrialJsonLogger(), range(1, 3))
    stored = local_log(trial).read_text()
    pause_with_a_stale_stored_log(trial, stored)
    local_log(trial).unlink()  # a new driver: its staging is empty
    resumed = TrialJsonLogger()
    resumed.log_trial_start(trial)
    resumed.log_trial_result(3, trial, {"epoch": 3})
    assert logged_epochs(trial) == [1, 2, 3]
